// The named steps of nomnomd's ingest API (POST /ingest/message and
// /ingest/batch, whose handlers are IngestService's, daemon/ingest_api.cpp):
//
//   IdempotencyResolver  the one place Idempotency-Key requests are resolved:
//                        the key's length, its identity (batch id, body
//                        hash), the 409 for a key reused with another body
//                        (known here, or read back from the stream), the
//                        answer to a repeat, remembering the first time.
//   BatchReply           one /ingest/batch request's answer, gathered from
//                        its chunks' publish results.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/base/metrics.h"
#include "core/http/http_server.h"
#include "core/queue/nats_client.h"
#include "daemon/idempotency_cache.h"
#include "daemon/task_pool.h"

namespace nomnom {

// The identity of an Idempotency-Key request.
struct IdempotentRequest {
  std::string cache_key;  // "<entity>\n<kind>\n<key>": the IdempotencyCache's key
  std::string batch_id;   // NameUuid(cache_key): the same key always makes the same chunk ids
  std::string body_hash;  // NameUuid of the request's data (Nomnom-Body-Hash)
};

// Thread-safe (the cache is; the rest is read-only). The references must
// outlive it and every answer it posted to `lookups`.
class IdempotencyResolver {
 public:
  static constexpr size_t kMaxKeyBytes = 256;

  IdempotencyResolver(IdempotencyCache& cache, JetStreamClient& js, BlockingTaskPool& lookups,
                      MetricCounter& duplicates)
      : cache_(cache), js_(js), lookups_(lookups), duplicates_(duplicates) {}

  // Answers 400 and returns false when `key` is too long.
  static bool CheckLength(std::string_view key, const http::Responder& respond);

  // The identity of a request with Idempotency-Key `key` (nullopt without
  // one): `kind` is "message" or "batch", `data` what its hash is taken of.
  static std::optional<IdempotentRequest> Identify(std::string_view entity, std::string_view kind, std::string_view key,
                                                   std::string_view data);
  // Before publishing: answers 409 and returns false when this process
  // remembers the key with another body.
  bool CheckKnown(const IdempotentRequest& req, const http::Responder& respond) const;

  // After JetStream stored the request's data (`duplicate`: it had all of it
  // already; `seq`: the stream sequence of a duplicate chunk). The first time:
  // remembers the key's body and returns false, for the caller to count and
  // answer. A repeat: counts a duplicate, answers make_repeat() (the first
  // time's answer) or 409 when the key came with another body (known here, or
  // read from the stored chunk's Nomnom-Body-Hash on `lookups`), and returns true.
  template <class MakeRepeat>
  bool AnsweredRepeat(const IdempotentRequest& req, bool duplicate, uint64_t seq, const http::Responder& respond,
                      MakeRepeat&& make_repeat) {
    if (!duplicate) {
      cache_.Remember(req.cache_key, req.body_hash);
      return false;
    }
    AnswerRepeat(req, seq, respond, make_repeat());
    return true;
  }

 private:
  void AnswerRepeat(const IdempotentRequest& req, uint64_t seq, const http::Responder& respond, http::Response repeat);

  IdempotencyCache& cache_;
  JetStreamClient& js_;
  BlockingTaskPool& lookups_;
  MetricCounter& duplicates_;
};

// One /ingest/batch request's answer. Made once its lines are checked, with
// the 202 body; each chunk's publish completion calls Record() (from any
// thread); the one that gets true answers with the methods below, which are
// then the caller's alone (every other completion has returned, and the
// counter's read-modify-writes order their records before it).
class BatchReply {
 public:
  BatchReply(http::Responder responder, std::string id, std::optional<IdempotentRequest> key, uint32_t chunk_count,
             uint64_t rows_accepted, nlohmann::ordered_json accepted_body)
      : respond(std::move(responder)),
        batch_id(std::move(id)),
        idempotent(std::move(key)),
        chunks(chunk_count),
        accepted(rows_accepted),
        accepted_body_(std::move(accepted_body)),
        remaining_(chunk_count) {}

  // One chunk's result: its input lines [first, last] and rows. True for the
  // last chunk's.
  bool Record(const PublishResult& r, std::pair<uint64_t, uint64_t> lines, uint32_t rows);

  // After the last Record():
  bool failed() const { return !error_.empty(); }
  bool all_duplicates() const { return all_duplicates_; }
  uint64_t first_duplicate_seq() const { return first_duplicate_seq_; }
  uint64_t rows_stored() const { return rows_stored_; }
  // The 202 answer (every chunk stored).
  http::Response Accepted() const;
  // The 503 answer when a chunk was not stored: which lines are stored and
  // which are not (merged ranges), so a retry sends only the rest.
  http::Response NotStored();

  const http::Responder respond;
  const std::string batch_id;
  const std::optional<IdempotentRequest> idempotent;  // with an Idempotency-Key
  const uint32_t chunks;
  const uint64_t accepted;  // rows

 private:
  const nlohmann::ordered_json accepted_body_;
  std::atomic<uint32_t> remaining_;
  std::mutex mu_;
  std::vector<std::pair<uint64_t, uint64_t>> stored_;      // guarded by mu_: line ranges of stored chunks
  std::vector<std::pair<uint64_t, uint64_t>> not_stored_;  // guarded by mu_
  uint64_t rows_stored_ = 0;                               // guarded by mu_
  std::string error_;                                      // guarded by mu_: the first failure
  bool all_duplicates_ = true;                             // guarded by mu_
  uint64_t first_duplicate_seq_ = 0;                       // guarded by mu_
};

}  // namespace nomnom
