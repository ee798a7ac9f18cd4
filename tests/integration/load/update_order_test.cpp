// --on-conflict update through several writers (issue 7, defect 9): the row
// from the later stream message wins whatever the order in which the
// transactions commit. CopySink against a real PostgreSQL, with the stream
// sequences a worker passes in RowOrigin::stream_seq.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "core/format/row_encoder.h"
#include "core/format/schema.h"
#include "core/pg/copy_sink.h"
#include "core/pg/table_setup.h"
#include "tests/support/test_env.h"

using namespace nomnom;
using namespace nomnom::testing;

namespace {

Entity ItemEntity(const std::string& table) {
  auto e = ParseEntity(
      "entity:\n  name: Item\n  fields:\n"
      "    - {name: id, type: String, args: [64]}\n"
      "    - {name: qty, type: Integer, nullable: true}\n"
      "  persistence:\n    database:\n      conformant_table: " +
          table + "\n      unicity_fields: [id]\n",
      "test");
  REQUIRE(e.ok());
  return *e;
}

// One message's rows: NDJSON lines encoded into one part, every row carrying
// the message's stream sequence.
struct Message {
  std::string body;  // padded for simdjson
  EncodedPart part;
};

std::unique_ptr<Message> Encode(const Entity& entity, const std::vector<std::string>& lines, uint64_t stream_seq) {
  auto m = std::make_unique<Message>();
  for (const auto& l : lines) m->body += l + "\n";
  const size_t size = m->body.size();
  m->body.append(kChunkPadding, ' ');
  RowEncoder enc(entity, RowEncoderOptions{});
  size_t at = 0;
  uint64_t line_no = 0;
  while (at < size) {
    const size_t nl = m->body.find('\n', at);
    std::string_view line(m->body.data() + at, nl - at);
    ++line_no;
    const size_t start = m->part.tuples.size();
    std::string error;
    REQUIRE(enc.Encode(line, m->body.size() - at, &m->part.tuples, nullptr, &error));
    m->part.offsets.push_back(static_cast<uint32_t>(start));
    m->part.origins.push_back(RowOrigin{0, line_no, line, stream_seq});
    at = nl + 1;
  }
  return m;
}

struct Fixture {
  Fixture() : table(UniqueName("upd_order")), entity(ItemEntity(table)) {
    db = Connect();
    REQUIRE(EnsureTable(*db, entity, ConflictMode::kUpdate).ok());
  }
  ~Fixture() {
    db->TryExec("DROP TABLE IF EXISTS " + QuoteIdent(table));
    db->TryExec("DROP TABLE IF EXISTS " + QuoteIdent(std::string(kVersionTablePrefix) + table));
  }
  std::unique_ptr<CopySink> Sink() {
    auto conn = PgConnection::Connect(DatabaseUrl(), "nomnom-tests");
    REQUIRE(conn.ok());
    auto sink = CopySink::Create(std::move(conn).value(), entity, ConflictMode::kUpdate);
    REQUIRE(sink.ok());
    return std::move(sink).value();
  }
  std::string Qty(const std::string& id) {
    return QueryValue(*db, "SELECT coalesce(qty::text, 'NULL') FROM " + QuoteIdent(table) + " WHERE id = '" + id + "'");
  }
  std::string table;
  Entity entity;
  std::unique_ptr<PgConnection> db;
};

const RejectFn kNoReject = [](const RowOrigin& o, std::string_view e) {
  FAIL("unexpected reject of line " << o.line << ": " << e);
};

}  // namespace

TEST_CASE("update: an older message committed after a newer one does not overwrite it", "[update-order]") {
  Fixture f;
  auto sink = f.Sink();
  auto newer = Encode(f.entity, {R"({"id":"k","qty":20})", R"({"id":"n","qty":1})"}, 20);
  auto older = Encode(f.entity, {R"({"id":"k","qty":10})", R"({"id":"o","qty":2})"}, 10);
  auto r1 = sink->Write({&newer->part}, kNoReject);
  REQUIRE(r1.ok());
  CHECK(r1->inserted == 2);
  auto r2 = sink->Write({&older->part}, kNoReject);
  REQUIRE(r2.ok());
  CHECK(f.Qty("k") == "20");  // the later message's row stays
  CHECK(f.Qty("o") == "2");   // a key only the older message has is still inserted
  CHECK(r2->inserted == 1);
  CHECK(r2->updated == 0);
  CHECK(r2->skipped == 1);
  // A still later message does win.
  auto latest = Encode(f.entity, {R"({"id":"k","qty":30})"}, 30);
  auto r3 = sink->Write({&latest->part}, kNoReject);
  REQUIRE(r3.ok());
  CHECK(r3->updated == 1);
  CHECK(f.Qty("k") == "30");
}

TEST_CASE("update: within one batch the row from the later message wins, whatever the part order", "[update-order]") {
  Fixture f;
  auto sink = f.Sink();
  // Parts in reverse stream order, and a key repeated within one message
  // (there the last line wins, as in a file).
  auto later = Encode(f.entity, {R"({"id":"k","qty":7})", R"({"id":"d","qty":1})", R"({"id":"d","qty":2})"}, 7);
  auto earlier = Encode(f.entity, {R"({"id":"k","qty":3})", R"({"id":"e","qty":5})"}, 3);
  auto r = sink->Write({&later->part, &earlier->part}, kNoReject);
  REQUIRE(r.ok());
  CHECK(f.Qty("k") == "7");
  CHECK(f.Qty("d") == "2");
  CHECK(f.Qty("e") == "5");
  CHECK(r->inserted + r->updated + r->skipped == 5);
}

TEST_CASE("update: two writers, the newer message's transaction holds the key and the older one waits, then loses",
          "[update-order]") {
  Fixture f;
  auto a = f.Sink();
  auto b = f.Sink();
  const std::string b_pid = QueryValue(b->connection(), "SELECT pg_backend_pid()");
  auto newer = Encode(f.entity, {R"({"id":"k","qty":20})"}, 20);
  auto older = Encode(f.entity, {R"({"id":"k","qty":10})"}, 10);

  // A writes the newer row and, before its COMMIT, waits until B (the older
  // row) is blocked on A's locks; B then commits after A.
  std::atomic<bool> b_done{false};
  Result<BatchResult> rb = Status::Ok();
  std::mutex mu;
  std::condition_variable cv;
  bool a_in_tx = false;
  std::thread tb([&] {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return a_in_tx; });
    lock.unlock();
    rb = b->Write({&older->part}, [](const RowOrigin&, std::string_view) {});
    b_done.store(true);
  });
  bool b_waited = false;
  auto ra = a->Write({&newer->part}, kNoReject, [&](PgConnection&, const std::vector<RejectedRow>&) {
    {
      std::lock_guard<std::mutex> lock(mu);
      a_in_tx = true;
    }
    cv.notify_all();
    // Generous: B needs only to connect its statement to the lock queue.
    for (int i = 0; i < 600 && !b_done.load(); ++i) {
      if (QueryValue(*f.db, "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid = " + b_pid) != "0") {
        b_waited = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return std::optional<PgError>();
  });
  tb.join();
  REQUIRE(ra.ok());
  REQUIRE(rb.ok());
  CHECK(b_waited);
  CHECK(f.Qty("k") == "20");
  CHECK(rb->skipped == 1);
  CHECK(rb->updated == 0);
}

TEST_CASE("update without stream sequences (nomnom load) keeps input order and creates no version table",
          "[update-order]") {
  Fixture f;
  auto sink = f.Sink();
  auto first = Encode(f.entity, {R"({"id":"k","qty":20})"}, 0);
  auto second = Encode(f.entity, {R"({"id":"k","qty":10})"}, 0);
  REQUIRE(sink->Write({&first->part}, kNoReject).ok());
  auto r = sink->Write({&second->part}, kNoReject);
  REQUIRE(r.ok());
  CHECK(r->updated == 1);
  CHECK(f.Qty("k") == "10");
  CHECK(QueryValue(*f.db, "SELECT count(*) FROM pg_class WHERE relname = '" + std::string(kVersionTablePrefix) +
                              f.table + "'") == "0");
}

TEST_CASE("update with stream sequences: a rejected row is isolated and leaves no version behind", "[update-order]") {
  Fixture f;
  Query(*f.db, "ALTER TABLE " + QuoteIdent(f.table) + " ADD CHECK (qty >= 0)");
  auto sink = f.Sink();
  auto msg = Encode(f.entity, {R"({"id":"a","qty":5})", R"({"id":"bad","qty":-1})", R"({"id":"c","qty":6})"}, 50);
  std::vector<std::pair<uint64_t, std::string>> rejects;
  auto r = sink->Write({&msg->part},
                       [&](const RowOrigin& o, std::string_view e) { rejects.emplace_back(o.line, std::string(e)); });
  REQUIRE(r.ok());
  CHECK(r->inserted == 2);
  CHECK(r->rejected == 1);
  REQUIRE(rejects.size() == 1);
  CHECK(rejects[0].first == 2);
  CHECK_THAT(rejects[0].second, Catch::Contains("23514"));
  // An older message's valid row for the rejected key is applied: the
  // rejected row's version was rolled back with it.
  auto older = Encode(f.entity, {R"({"id":"bad","qty":1})", R"({"id":"a","qty":1})"}, 40);
  auto r2 = sink->Write({&older->part}, kNoReject);
  REQUIRE(r2.ok());
  CHECK(f.Qty("bad") == "1");
  CHECK(f.Qty("a") == "5");
  CHECK(r2->inserted == 1);
  CHECK(r2->skipped == 1);
}

TEST_CASE("update with stream sequences: four concurrent writers converge on each key's latest message",
          "[update-order]") {
  Fixture f;
  // 200 messages (sequences 1..200), each with 5 of 30 keys; qty = the
  // message's sequence. Four writers take the messages in shuffled order.
  constexpr int kMessages = 200, kKeys = 30, kWriters = 4;
  std::mt19937 rng(99);
  std::vector<std::unique_ptr<Message>> msgs;
  std::map<std::string, int> latest;
  for (int seq = 1; seq <= kMessages; ++seq) {
    std::vector<std::string> lines;
    for (int i = 0; i < 5; ++i) {
      const std::string key = "k" + std::to_string(rng() % kKeys);
      lines.push_back(R"({"id":")" + key + R"(","qty":)" + std::to_string(seq) + "}");
      latest[key] = seq;
    }
    msgs.push_back(Encode(f.entity, lines, static_cast<uint64_t>(seq)));
  }
  std::vector<size_t> order(msgs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<std::unique_ptr<CopySink>> sinks;
  for (int w = 0; w < kWriters; ++w) sinks.push_back(f.Sink());
  std::atomic<size_t> next{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (size_t i; (i = next.fetch_add(2)) < order.size();) {
        // Two messages per transaction, as a fetch of several would be.
        std::vector<const EncodedPart*> parts = {&msgs[order[i]]->part};
        if (i + 1 < order.size()) parts.push_back(&msgs[order[i + 1]]->part);
        auto r = sinks[static_cast<size_t>(w)]->Write(parts, [](const RowOrigin&, std::string_view) {});
        if (!r.ok() || r->rejected != 0) failures.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(failures.load() == 0);
  PgRows rows = Query(*f.db, "SELECT id, qty FROM " + QuoteIdent(f.table));
  CHECK(rows.rows.size() == latest.size());
  for (const auto& row : rows.rows) {
    INFO("key " << row[0].value());
    CHECK(row[1].value() == std::to_string(latest.at(row[0].value())));
  }
}
