// IngestService (nomnomd's API) in-process, against real nats-server and
// PostgreSQL, with no embedded worker: what the API leaves in the stream.
#include "daemon/ingest_service.h"

#include <catch2/catch.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/format/pgcopy_chunk.h"
#include "core/format/row_encoder.h"
#include "core/format/schema.h"
#include "core/http/http_server.h"
#include "core/queue/chunk_writer.h"
#include "core/queue/ingest_format.h"
#include "core/queue/nats_client.h"
#include "tests/support/test_env.h"

using namespace nomnom;
using namespace nomnom::testing;
using json = nlohmann::json;

namespace {

struct Answer {
  int status = 0;
  std::string body;
  json j;
};

struct Service {
  explicit Service(size_t chunk_rows = 1000, size_t chunk_bytes = 512 << 10, const JetStreamConfig* shared = nullptr,
                   PublishFormat publish_format = DaemonConfig{}.publish_format)
      : config(shared != nullptr ? *shared : UniqueJetStreamConfig("nns")) {
    auto c = JetStreamClient::Connect(config);
    if (!c.ok()) FAIL(c.status().message());
    js = std::move(c).value();
    REQUIRE(js->EnsureTopology().ok());
    auto entities = LoadEntityDir(SourcePath("data/tpch/entities"));
    REQUIRE(entities.ok());
    DaemonConfig dc;
    dc.database_url = DatabaseUrl();
    dc.entities = *entities;
    dc.default_entity = "Order";
    dc.workers = 0;
    dc.chunk_max_rows = chunk_rows;
    dc.chunk_max_bytes = chunk_bytes;
    dc.publish_format = publish_format;
    service = std::make_unique<IngestService>(dc, *js, metrics);
    http::ServerOptions ho;
    ho.listen = "127.0.0.1:0";
    ho.max_body_bytes = 64 << 20;
    server = std::make_unique<http::Server>(ho);
    service->Register(*server);
    REQUIRE(server->Start().ok());
    service->Start();
    service->SetReady(true);
    // /ready turns 200 once the monitor has seen the stream.
    for (int i = 0; i < 100 && Get("/ready").status != 200; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ~Service() {
    server->Stop(2000);
    service->Shutdown(5000);
  }

  Answer Curl(const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {"/usr/bin/curl", "-sS", "-m", "60", "-w", "\n%{http_code}"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    CommandResult r = Run(argv);
    REQUIRE(r.exit_code == 0);
    Answer a;
    const size_t nl = r.out.rfind('\n');
    a.body = r.out.substr(0, nl);
    a.status = std::stoi(r.out.substr(nl + 1));
    a.j = json::parse(a.body, nullptr, false);
    return a;
  }
  std::string Url(const std::string& path) { return "http://127.0.0.1:" + std::to_string(server->port()) + path; }
  Answer Get(const std::string& path) { return Curl({Url(path)}); }
  Answer PostFile(const std::string& path, const std::string& file, const std::string& content_type,
                  const std::vector<std::string>& headers = {}) {
    std::vector<std::string> a = {"-X", "POST", "-H", "Content-Type: " + content_type, "--data-binary", "@" + file};
    for (const auto& h : headers) {
      a.push_back("-H");
      a.push_back(h);
    }
    a.push_back(Url(path));
    return Curl(a);
  }

  // Every message now in the stream (fetched, then nak'ed back).
  std::vector<std::unique_ptr<FetchedMessage>> Drain() {
    std::vector<std::unique_ptr<FetchedMessage>> out;
    for (;;) {
      auto msgs = js->Fetch(1000, 0, 1000);
      REQUIRE(msgs.ok());
      if (msgs->empty()) break;
      for (auto& m : *msgs) out.push_back(std::move(m));
    }
    return out;
  }

  JetStreamConfig config;
  std::unique_ptr<JetStreamClient> js;
  MetricsRegistry metrics;
  std::unique_ptr<IngestService> service;
  std::unique_ptr<http::Server> server;
};

std::string Order(const std::string& key, const std::string& comment = "c") {
  return R"({"order_key":")" + key + R"(","customer_key":"C","order_status":"O","total_price":1.5,)" +
         R"("order_date":"2024-01-01","comment":")" + comment + R"("})";
}

// The parts of a chunk message that do not depend on its random batch id.
std::string Shape(const FetchedMessage& m) {
  return std::string(m.subject()) + "|" + m.Header(std::string(kHeaderEntity)).value_or("?") + "|" +
         m.Header(std::string(kHeaderRows)).value_or("?") + "|" + m.Header(std::string(kHeaderFormat)).value_or("") +
         "|" + m.Header(std::string(kHeaderSchema)).value_or("") + "|" + std::string(m.body());
}

}  // namespace

TEST_CASE("load --via-nats and /ingest/batch publish identical chunks for identical rows", "[service][wire]") {
  // Both publish binary COPY tuples by default, and NDJSON when told to.
  const bool binary = GENERATE(true, false);
  INFO((binary ? "binary" : "ndjson"));
  Service s(/*chunk_rows=*/400, /*chunk_bytes=*/16 << 10, nullptr,
            binary ? PublishFormat::kPgCopy1 : PublishFormat::kNdjson);
  TempDir dir;
  std::string rows;
  for (int i = 0; i < 1000; ++i)
    rows += Order("w-" + std::to_string(i), std::string(static_cast<size_t>(i % 90), 'x')) + "\n";
  const std::string file = dir.Write("rows.ndjson", rows);

  Answer a = s.PostFile("/ingest/batch", file, "application/x-ndjson");
  REQUIRE(a.status == 202);
  CHECK(a.j["accepted"] == 1000);
  std::multiset<std::string> from_api;
  for (auto& m : s.Drain()) {
    from_api.insert(Shape(*m));
    m->Ack();
  }
  REQUIRE(from_api.size() > 2);  // split by bytes and rows into several chunks
  CHECK(from_api.begin()->find(binary ? "|pgcopy1|" : "|||") != std::string::npos);

  const JetStreamConfig& c = s.config;
  CommandResult r = RunNomnom({"load",
                               file,
                               "--via-nats",
                               "--publish-format",
                               binary ? "binary" : "ndjson",
                               "--jobs",
                               "1",
                               "--chunk-rows",
                               "400",
                               "--chunk-kb",
                               "16",
                               "--nats",
                               c.url,
                               "--stream",
                               c.stream,
                               "--stream-subjects",
                               c.stream_subjects,
                               "--subject-prefix",
                               c.subject_prefix,
                               "--consumer",
                               c.consumer,
                               "--dlq-stream",
                               c.dlq_stream,
                               "--dlq-subjects",
                               c.dlq_subjects,
                               "--dlq-subject-prefix",
                               c.dlq_subject_prefix,
                               "--stream-max-age",
                               std::to_string(c.max_age_ms / 1000),
                               "--stream-max-mb",
                               std::to_string(c.max_bytes >> 20),
                               "--duplicate-window",
                               std::to_string(c.duplicate_window_ms / 1000),
                               "--ack-wait-ms",
                               std::to_string(c.ack_wait_ms),
                               "-q"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  std::multiset<std::string> from_load;
  for (auto& m : s.Drain()) {
    from_load.insert(Shape(*m));
    m->Ack();
  }
  CHECK(from_load == from_api);
}

TEST_CASE("/ingest/message publishes the row's COPY tuple, or its line when told, or with an Idempotency-Key",
          "[service][wire]") {
  const bool binary = GENERATE(true, false);
  INFO((binary ? "binary" : "ndjson"));
  Service s(1000, 512 << 10, nullptr, binary ? PublishFormat::kPgCopy1 : PublishFormat::kNdjson);
  TempDir dir;
  const std::string row = Order("m-1", "tuple");
  const std::string file = dir.Write("one.json", "{\n  " + row.substr(1));  // spans lines: minified for NDJSON
  const std::string keyed_file = dir.Write("keyed.json", Order("m-2"));
  REQUIRE(s.PostFile("/ingest/message", file, "application/json").status == 202);
  REQUIRE(s.PostFile("/ingest/message", keyed_file, "application/json", {"Idempotency-Key: k-1"}).status == 202);
  auto msgs = s.Drain();
  REQUIRE(msgs.size() == 2);
  const Entity* order = nullptr;
  auto entities = LoadEntityDir(SourcePath("data/tpch/entities"));
  REQUIRE(entities.ok());
  order = FindEntity(*entities, "Order");
  REQUIRE(order != nullptr);
  for (auto& m : msgs) {
    const bool keyed = m->Header("Nomnom-Body-Hash").has_value();  // the Idempotency-Key message
    const std::string format = m->Header(std::string(kHeaderFormat)).value_or("");
    CHECK(m->Header(std::string(kHeaderRows)) == "1");
    if (binary && !keyed) {
      CHECK(format == "pgcopy1");
      CHECK(m->Header(std::string(kHeaderSchema)) == SchemaFingerprint(*order));
      RowEncoder enc(*order, RowEncoderOptions{});
      std::string padded = row + std::string(kChunkPadding, ' ');
      ByteBuffer tuple;
      std::string error;
      REQUIRE(enc.Encode(std::string_view(padded.data(), row.size()), padded.size(), &tuple, nullptr, &error));
      CHECK(m->body() == tuple.view());
    } else {
      CHECK(format.empty());
      CHECK(m->body() == (keyed ? Order("m-2") : row) + "\n");
    }
    m->Ack();
  }
}

TEST_CASE("a row larger than NATS max_payload: 413 alone, a line reject in a batch; nothing else is lost",
          "[service][payload]") {
  // Chunks up to 64 MiB are allowed by configuration: the server's
  // max_payload (1 MB by default) is what limits them.
  Service s(1000, size_t{64} << 20);
  TempDir dir;
  const std::string huge = Order("big", std::string(1200 * 1024, 'y'));
  Answer m = s.PostFile("/ingest/message", dir.Write("huge.json", huge), "application/json");
  CHECK(m.status == 413);
  CHECK(m.j["error"].get<std::string>().find("max_payload") != std::string::npos);

  // 3,011 orders, one of them huge (the case that once stored some chunks and
  // answered 503, so a retry doubled them).
  std::string rows;
  for (int i = 0; i < 3011; ++i)
    rows += (i == 1500 ? huge : Order("p-" + std::to_string(i), std::string(200, 'z'))) + "\n";
  Answer b = s.PostFile("/ingest/batch", dir.Write("batch.ndjson", rows), "application/x-ndjson");
  REQUIRE(b.status == 202);
  CHECK(b.j["accepted"] == 3010);
  CHECK(b.j["rejected"] == 1);
  CHECK(b.j["errors"][0]["line"] == 1501);
  uint64_t stored_rows = 0;
  for (auto& msg : s.Drain()) {
    stored_rows += std::stoull(msg->Header(std::string(kHeaderRows)).value_or("0"));
    CHECK(msg->body().size() < static_cast<size_t>(s.js->MaxPayload()));
    msg->Ack();
  }
  CHECK(stored_rows == 3010);
}

TEST_CASE(
    "Idempotency-Key on /ingest/batch: a repeat stores nothing and answers as the first time; another body is 409",
    "[service][idempotency]") {
  Service s(100);  // a small chunk setting: keyed batches do not depend on it
  TempDir dir;
  std::string rows, other;
  for (int i = 0; i < 250; ++i) rows += Order("k-" + std::to_string(i)) + "\n";
  rows += "{\"order_key\":\"bad\"}\n";
  for (int i = 0; i < 5; ++i) other += Order("o-" + std::to_string(i)) + "\n";
  const std::string f1 = dir.Write("a.ndjson", rows), f2 = dir.Write("b.ndjson", other);

  Answer first = s.PostFile("/ingest/batch", f1, "application/x-ndjson", {"Idempotency-Key: batch-1"});
  REQUIRE(first.status == 202);
  CHECK(first.j["status"] == "partial");
  Answer again = s.PostFile("/ingest/batch", f1, "application/x-ndjson", {"Idempotency-Key: batch-1"});
  CHECK(again.status == 202);
  CHECK(again.body == first.body);
  Answer conflict = s.PostFile("/ingest/batch", f2, "application/x-ndjson", {"Idempotency-Key: batch-1"});
  CHECK(conflict.status == 409);
  {
    // Another daemon on the same stream (its cache is empty) tells the other
    // body apart from the stored original's hash, and answers a true repeat
    // as the first time.
    Service s2(100, 512 << 10, &s.config);
    Answer c2 = s2.PostFile("/ingest/batch", f2, "application/x-ndjson", {"Idempotency-Key: batch-1"});
    CHECK(c2.status == 409);
    Answer r2 = s2.PostFile("/ingest/batch", f1, "application/x-ndjson", {"Idempotency-Key: batch-1"});
    CHECK(r2.status == 202);
    CHECK(r2.body == first.body);
  }

  uint64_t stored = 0;
  std::set<std::string> ids;
  for (auto& m : s.Drain()) {
    stored += std::stoull(m->Header(std::string(kHeaderRows)).value_or("0"));
    ids.insert(m->Header("Nats-Msg-Id").value_or(""));
    m->Ack();
  }
  CHECK(stored == 250);
  // One chunk of the default 1000 rows, whatever --chunk-rows says.
  CHECK(ids.size() == 1);
  CHECK(*ids.begin() == first.j["batch_id"].get<std::string>() + ":0");
}

TEST_CASE("probes answer at once and /live needs nothing", "[service][probes]") {
  Service s;
  CHECK(s.Get("/live").status == 200);
  CHECK(s.Get("/ready").status == 200);
  CHECK(s.Get("/health").status == 200);
  Answer st = s.Get("/stats");
  CHECK(st.status == 200);
  CHECK(st.j["workers"]["count"] == 0);
}

TEST_CASE("a batch JetStream stores only in part: the 503 names exactly the stored lines", "[service][partial]") {
  JetStreamConfig small = UniqueJetStreamConfig("nnp");
  small.max_bytes = 1 << 20;  // a 1 MiB stream: the batch below needs about 2.5
  Service s(1000, 64 << 10, &small);
  TempDir dir;
  std::string rows;
  for (int i = 0; i < 3000; ++i) rows += Order("s-" + std::to_string(i), std::string(700, 'q')) + "\n";
  Answer a = s.PostFile("/ingest/batch", dir.Write("big.ndjson", rows), "application/x-ndjson");
  REQUIRE(a.status == 503);
  INFO(a.body);
  const uint64_t stored = a.j["rows_stored"].get<uint64_t>();
  CHECK(stored > 0);
  CHECK(stored < 3000);
  // The two lists of line ranges partition lines 1..3000 (every line here is
  // a row), and the stored ones hold rows_stored rows.
  std::vector<int> covered(3001, 0);
  uint64_t listed = 0;
  for (const char* which : {"stored_lines", "not_stored_lines"}) {
    for (const auto& range : a.j[which]) {
      for (uint64_t l = range[0].get<uint64_t>(); l <= range[1].get<uint64_t>(); ++l) {
        REQUIRE(l <= 3000);
        ++covered[l];
        if (std::string(which) == "stored_lines") ++listed;
      }
    }
  }
  for (int l = 1; l <= 3000; ++l) CHECK(covered[static_cast<size_t>(l)] == 1);
  CHECK(listed == stored);
  uint64_t in_stream = 0;
  for (auto& m : s.Drain()) {
    in_stream += std::stoull(m->Header(std::string(kHeaderRows)).value_or("0"));
    m->Ack();
  }
  CHECK(in_stream == stored);
}
