// RenderDashboardPage: the page as served to a viewer who may see the data.
#include "daemon/dashboard_page.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>

using nomnom::RenderDashboardPage;

namespace {

const std::string kPage = R"(<body><div id="board" hidden>
<div class="big" id="total-accepted">–</div><div class="big" id="total-committed">–</div>
<div class="big" id="total-rejected">–</div><div class="big" id="total-dead">–</div></div>
<script src="/dashboard/assets/dashboard.js"></script></body>)";

// The text between the data block's tags.
std::string DataBlock(const std::string& html) {
  const std::string open = R"(<script type="application/json" id="snapshot">)";
  const size_t from = html.find(open);
  if (from == std::string::npos) return "";
  const size_t begin = from + open.size();
  return html.substr(begin, html.find("</script>", begin) - begin);
}

}  // namespace

TEST_CASE("dashboard page: the totals cards and the snapshot are in the HTML", "[dashboard]") {
  const std::string snapshot =
      R"({"seq":7,"totals":{"accepted":15000,"committed":1234567,"rejected":0,"dead":12},"entities":[]})";
  const std::string html = RenderDashboardPage(kPage, snapshot);
  CHECK(html.find(R"(<div id="board">)") != std::string::npos);
  CHECK(html.find(R"(id="total-accepted">15,000<)") != std::string::npos);
  CHECK(html.find(R"(id="total-committed">1,234,567<)") != std::string::npos);
  CHECK(html.find(R"(id="total-rejected">0<)") != std::string::npos);
  CHECK(html.find(R"(id="total-dead">12<)") != std::string::npos);
  // The data block comes before the page's script and holds the same JSON.
  CHECK(html.find("id=\"snapshot\"") < html.find("<script src="));
  CHECK(nlohmann::json::parse(DataBlock(html)) == nlohmann::json::parse(snapshot));
}

TEST_CASE("dashboard page: client text in the snapshot cannot close the data block", "[dashboard]") {
  const std::string snapshot = R"({"totals":{"accepted":1,"committed":1,"rejected":0,"dead":0},)"
                               R"("entities":[{"name":"</script><script>alert(1)</script><!--"}]})";
  const std::string html = RenderDashboardPage(kPage, snapshot);
  // Exactly the two closing tags the page itself has: the data block's and the script's.
  size_t closes = 0;
  for (size_t at = html.find("</script>"); at != std::string::npos; at = html.find("</script>", at + 1)) ++closes;
  CHECK(closes == 2);
  CHECK(html.find("<!--") == std::string::npos);
  CHECK(nlohmann::json::parse(DataBlock(html)) == nlohmann::json::parse(snapshot));
}

TEST_CASE("dashboard page: what it cannot fill is served unchanged", "[dashboard]") {
  CHECK(RenderDashboardPage(kPage, "not json") == kPage);
  CHECK(RenderDashboardPage(kPage, R"({"no":"totals"})") == kPage);
  CHECK(RenderDashboardPage("<html>no board</html>", R"({"totals":{}})") == "<html>no board</html>");
}
