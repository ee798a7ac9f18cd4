// IngestService's ingest API: POST /ingest/message and /ingest/batch, and
// the named steps of daemon/ingest_api.h.
#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/base/log.h"
#include "core/base/utf8.h"
#include "core/format/pgcopy_chunk.h"
#include "core/queue/chunk_writer.h"
#include "core/queue/ingest_format.h"
#include "daemon/ingest_api.h"
#include "daemon/ingest_request.h"
#include "daemon/ingest_service.h"
#include "daemon/json_reply.h"

namespace nomnom {

namespace {

using json = nlohmann::ordered_json;

http::Response KeyConflict() { return ErrorResponse(409, "Idempotency-Key was used with another body"); }

// The 202 body of a /ingest/message row, without building a json object:
// the id (a UUID and a number) and the timestamp need no escaping.
// The timestamp is the time of the call.
std::string MessageAccepted(std::string_view batch_id, uint32_t row, std::string_view status) {
  std::string body;
  body.reserve(128);
  body += R"({"message_id":")";
  AppendMessageId(&body, batch_id, row);
  body += R"(","status":")";
  body += status;
  body += R"(","timestamp":")";
  AppendUtcTimestamp(&body);
  body += R"("})";
  return body;
}

http::Response Accepted(std::string body) {
  http::Response r;
  r.status = 202;
  r.body = std::move(body);
  return r;
}

// Line ranges [first, last] of chunks, merged where they touch.
json LineRanges(const std::vector<std::pair<uint64_t, uint64_t>>& ranges) {
  json out = json::array();
  for (const auto& [a, b] : ranges) {
    if (!out.empty() && out.back()[1].get<uint64_t>() + 1 >= a) {
      out.back()[1] = std::max(out.back()[1].get<uint64_t>(), b);
    } else {
      out.push_back(json::array({a, b}));
    }
  }
  return out;
}

}  // namespace

// ---- IdempotencyResolver ------------------------------------------------------

bool IdempotencyResolver::CheckLength(std::string_view key, const http::Responder& respond) {
  if (key.size() <= kMaxKeyBytes) return true;
  respond(ErrorResponse(400, "Idempotency-Key is longer than " + std::to_string(kMaxKeyBytes) + " characters"));
  return false;
}

std::optional<IdempotentRequest> IdempotencyResolver::Identify(std::string_view entity, std::string_view kind,
                                                               std::string_view key, std::string_view data) {
  if (key.empty()) return std::nullopt;
  IdempotentRequest req;
  req.cache_key.reserve(entity.size() + kind.size() + key.size() + 2);
  req.cache_key.append(entity).append("\n").append(kind).append("\n").append(key);
  req.batch_id = NameUuid(req.cache_key);
  req.body_hash = NameUuid(data);
  return req;
}

bool IdempotencyResolver::CheckKnown(const IdempotentRequest& req, const http::Responder& respond) const {
  if (auto known = cache_.BodyHash(req.cache_key); known && *known != req.body_hash) {
    respond(KeyConflict());
    return false;
  }
  return true;
}

void IdempotencyResolver::AnswerRepeat(const IdempotentRequest& req, uint64_t seq, const http::Responder& respond,
                                       http::Response repeat) {
  duplicates_.Inc();
  if (auto known = cache_.BodyHash(req.cache_key)) {
    respond(*known == req.body_hash ? std::move(repeat) : KeyConflict());
    return;
  }
  // Stored by another process (or before a restart): the original's hash is
  // in the stream while no worker has consumed it.
  auto check = [this, req, seq, respond, repeat] {
    auto stored = js_.StoredHeader(seq, std::string(kHeaderBodyHash));
    if (stored.ok() && stored->has_value() && **stored != req.body_hash) {
      respond(KeyConflict());
      return;
    }
    if (stored.ok() && stored->has_value()) cache_.Remember(req.cache_key, req.body_hash);
    respond(repeat);
  };
  if (!lookups_.Submit(check)) respond(std::move(repeat));
}

// ---- BatchReply ---------------------------------------------------------------

bool BatchReply::Record(const PublishResult& r, std::pair<uint64_t, uint64_t> lines, uint32_t rows) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (r.status.ok()) {
      stored_.push_back(lines);
      rows_stored_ += rows;
      if (!r.duplicate) {
        all_duplicates_ = false;
      } else if (first_duplicate_seq_ == 0) {
        first_duplicate_seq_ = r.stream_seq;
      }
    } else {
      not_stored_.push_back(lines);
      if (error_.empty()) error_ = r.status.message();
    }
  }
  return remaining_.fetch_sub(1) == 1;
}

http::Response BatchReply::Accepted() const { return JsonResponse(202, accepted_body_); }

http::Response BatchReply::NotStored() {
  std::lock_guard<std::mutex> lock(mu_);
  std::sort(stored_.begin(), stored_.end());
  std::sort(not_stored_.begin(), not_stored_.end());
  json j;
  j["error"] = "JetStream did not store the whole batch: " + error_;
  j["batch_id"] = batch_id;
  j["rows_stored"] = rows_stored_;
  j["stored_lines"] = LineRanges(stored_);
  j["not_stored_lines"] = LineRanges(not_stored_);
  return JsonResponse(503, j);
}

// ---- the handlers -------------------------------------------------------------

const Entity* IngestService::CheckIngest(const http::Request& req, const http::Responder& respond, bool batch) {
  if (draining_.load() || !ready_.load()) {
    respond(ErrorResponse(503, draining_.load() ? "shutting down" : "not ready"));
    return nullptr;
  }
  if (!js_.IsConnected()) {
    respond(ErrorResponse(503, "JetStream is unavailable"));
    return nullptr;
  }
  // The media type, without parameters, compared case-insensitively (no copy:
  // this runs for every request).
  std::string_view ct = req.header_view("Content-Type");
  ct = ct.substr(0, ct.find(';'));
  while (!ct.empty() && ct.back() == ' ') ct.remove_suffix(1);
  const auto is = [ct](std::string_view type) {
    return ct.size() == type.size() && std::equal(ct.begin(), ct.end(), type.begin(), [](char a, char b) {
             return (a >= 'A' && a <= 'Z' ? static_cast<char>(a - 'A' + 'a') : a) == b;
           });
  };
  const bool ok_type =
      is("application/json") || (batch && (is("application/x-ndjson") || is("text/plain") || is("application/ndjson")));
  if (!ok_type) {
    respond(
        ErrorResponse(415, "unsupported Content-Type '" + Excerpt(ct, 100) + "'; use " +
                               (batch ? "application/x-ndjson, application/json or text/plain" : "application/json")));
    return nullptr;
  }
  std::string name = config_.default_entity;
  if (auto it = req.query.find("entity"); it != req.query.end()) name = it->second;
  if (auto t = req.query.find("table"); t != req.query.end()) {
    if (req.query.count("entity") > 0) {
      respond(ErrorResponse(400, "give either ?entity= or ?table=, not both"));
      return nullptr;
    }
    auto allowed = config_.allowed_tables.find(t->second);
    if (allowed == config_.allowed_tables.end()) {
      respond(ErrorResponse(404, "table '" + Excerpt(t->second, 100) +
                                     "' is not served here (nomnomd loads only the tables listed with --allow-table)"));
      return nullptr;
    }
    name = allowed->second;
  }
  const Entity* e = FindEntity(config_.entities, name);
  if (e == nullptr) {
    respond(ErrorResponse(404, "unknown entity '" + Excerpt(name, 100) + "'"));
    return nullptr;
  }
  if (publisher_.Overloaded()) {
    http::Response r = ErrorResponse(503, "overloaded: too much data waiting for JetStream; retry later");
    r.headers.emplace_back("Retry-After", "1");
    respond(std::move(r));
    return nullptr;
  }
  return e;
}

void IngestService::HandleMessage(http::Request&& req, http::Responder respond) {
  const Entity* e = CheckIngest(req, respond, false);
  if (e == nullptr) return;
  const std::string key = req.header("Idempotency-Key");
  if (!IdempotencyResolver::CheckLength(key, respond)) return;
  // Binary unless told otherwise, nested, or with a key (its chunk's body
  // hash is the line's).
  const PublishFormat format = key.empty() && Derived(*e).empty() ? config_.publish_format : PublishFormat::kNdjson;
  MessageCheck checked = CheckMessage(*e, req.body, publisher_.BodyLimit(e->name, format), Derived(*e), format);
  if (checked.status != 200) {
    messages_rejected_.Inc();
    AddRejected(*e, 1);
    rejects_.Add(DashboardEvent{UtcTimestamp(), "", e->name, 0, Excerpt(checked.error, 300)});
    respond(ErrorResponse(checked.status, checked.error));
    return;
  }
  const std::string_view line = checked.row();  // into req.body

  if (auto idem = IdempotencyResolver::Identify(e->name, "message", key, line)) {
    PublishKeyedMessage(*e, std::move(*idem), line, std::move(respond));
    return;
  }
  publisher_.AddRow(
      e->name, format == PublishFormat::kPgCopy1 ? checked.tuple : line,
      // Counted and remembered per chunk (on_rows_stored).
      [respond = std::move(respond)](const PublishResult& r, const std::string& batch_id, uint32_t row) {
        if (!r.status.ok()) {
          respond(ErrorResponse(503, "JetStream did not store the message: " + r.status.message()));
          return;
        }
        respond(Accepted(MessageAccepted(batch_id, row, "accepted")));
      },
      format, Schema(*e));
}

void IngestService::PublishKeyedMessage(const Entity& e, IdempotentRequest idem, std::string_view line,
                                        http::Responder respond) {
  // A chunk of its own whose id derives from the key: JetStream's duplicate
  // window and the workers' ledger keep one copy. The body's hash tells a
  // repeat (answered as the first time) from a conflicting reuse (409).
  if (!idempotent_.CheckKnown(idem, respond)) return;
  OutgoingMessage m =
      MakeChunkMessage(js_.EntitySubject(e.name), e.name, idem.batch_id, 0, 1, 1, std::string(line) + "\n",
                       ChunkEncoding{PublishFormat::kNdjson, {}, idem.body_hash});
  publisher_.Publish(std::move(m), [this, entity = &e, respond, idem = std::move(idem)](const PublishResult& r) {
    if (!r.status.ok()) {
      respond(ErrorResponse(503, "JetStream did not store the message: " + r.status.message()));
      return;
    }
    if (idempotent_.AnsweredRepeat(idem, r.duplicate, r.stream_seq, respond,
                                   [&] { return Accepted(MessageAccepted(idem.batch_id, 0, "duplicate")); })) {
      return;
    }
    messages_accepted_.Inc();
    AddAccepted(entity->name, 1);
    pending_.Remember(idem.batch_id, 1, 1);
    respond(Accepted(MessageAccepted(idem.batch_id, 0, "accepted")));
  });
}

void IngestService::ListRejects(const Entity& e, const json& errors, const std::string& batch_id) {
  const std::string now = UtcTimestamp();
  for (size_t i = 0; i < errors.size() && i < 5; ++i) {
    rejects_.Add(DashboardEvent{now, batch_id, e.name, errors[i]["line"].get<uint64_t>(),
                                Excerpt(errors[i]["error"].get<std::string>(), 300)});
  }
}

void IngestService::HandleBatch(http::Request&& req, http::Responder respond) {
  const Entity* e = CheckIngest(req, respond, true);
  if (e == nullptr) return;
  const std::string key = req.header("Idempotency-Key");
  if (!IdempotencyResolver::CheckLength(key, respond)) return;
  // With a key, the chunk split (and so each chunk's id) depends on the body
  // alone, not on this daemon's chunk settings: a retry sent to another
  // replica makes the same chunks.
  const std::vector<const Entity*>& derived = Derived(*e);
  const PublishFormat format = derived.empty() ? config_.publish_format : PublishFormat::kNdjson;
  // pgcopy1's two extra headers come off the body's room.
  const int64_t payload = js_.MaxPayload() - (format == PublishFormat::kPgCopy1 ? kPgCopyHeaderBytes : 0);
  ChunkLimits limits =
      key.empty() ? publisher_.LimitsFor(e->name) : ChunkLimits{1000, ChunkBodyLimit(payload, e->name, 512 << 10)};
  limits.max_bytes = ChunkBodyLimit(payload, e->name, limits.max_bytes);
  // (Hashed before CheckBatch, which may change the body.)
  std::optional<IdempotentRequest> idem = IdempotencyResolver::Identify(e->name, "batch", key, req.body);
  BatchCheck batch = CheckBatch(*e, req.body, limits, config_.max_errors_reported, derived, format);
  const uint64_t accepted = batch.accepted, rejected = batch.rejected;
  json errors = json::array();
  for (auto& [line, why] : batch.errors) errors.push_back({{"line", line}, {"error", std::move(why)}});
  AddRejected(*e, rejected);
  if (accepted == 0) {
    ListRejects(*e, errors, "");
    json j;
    j["error"] = rejected == 0 ? "the body holds no rows" : "no valid line in the batch";
    j["accepted"] = 0;
    j["rejected"] = rejected;
    j["errors"] = errors;
    j["errors_truncated"] = rejected > errors.size();
    j["max_errors_reported"] = config_.max_errors_reported;
    respond(JsonResponse(400, j));
    return;
  }
  if (idem && !idempotent_.CheckKnown(*idem, respond)) return;
  std::string batch_id = idem ? idem->batch_id : NewUuid();
  ListRejects(*e, errors, batch_id);
  const bool truncated = rejected > errors.size();
  json body;
  body["batch_id"] = batch_id;
  body["status"] = rejected == 0 ? "accepted" : "partial";
  body["accepted"] = accepted;
  body["rejected"] = rejected;
  body["errors"] = std::move(errors);
  body["errors_truncated"] = truncated;
  body["max_errors_reported"] = config_.max_errors_reported;
  const auto count = static_cast<uint32_t>(batch.chunks.size());
  auto reply = std::make_shared<BatchReply>(std::move(respond), std::move(batch_id), std::move(idem), count, accepted,
                                            std::move(body));
  PublishBatch(*e, reply, batch.chunks, batch.format);
}

void IngestService::PublishBatch(const Entity& e, const std::shared_ptr<BatchReply>& reply,
                                 std::vector<ChunkBody>& chunks, PublishFormat format) {
  const ChunkEncoding encoding{format, Schema(e),
                               reply->idempotent ? std::string_view(reply->idempotent->body_hash) : std::string_view()};
  const uint32_t count = reply->chunks;
  for (uint32_t k = 0; k < count; ++k) {
    ChunkBody& c = chunks[k];
    const std::pair<uint64_t, uint64_t> lines{c.first_line, c.last_line};
    const uint32_t rows = c.rows;
    OutgoingMessage m = MakeChunkMessage(js_.EntitySubject(e.name), e.name, reply->batch_id, k, count, rows,
                                         std::move(c.body), encoding);
    publisher_.Publish(std::move(m), [this, entity = &e, reply, lines, rows](const PublishResult& r) {
      if (reply->Record(r, lines, rows)) FinishBatch(*entity, *reply);
    });
  }
}

void IngestService::FinishBatch(const Entity& e, BatchReply& reply) {
  if (reply.failed()) {
    // Say exactly which rows are stored, so a retry sends only the rest (or
    // the whole batch again with an Idempotency-Key).
    http::Response answer = reply.NotStored();
    if (reply.rows_stored() > 0) {
      AddAccepted(e.name, reply.rows_stored());
      pending_.Remember(reply.batch_id, static_cast<uint32_t>(reply.rows_stored()), reply.chunks);
    }
    reply.respond(std::move(answer));
    return;
  }
  // A repeat of a stored batch is answered as the first time, unless the key
  // came with another body.
  if (reply.idempotent &&
      idempotent_.AnsweredRepeat(*reply.idempotent, reply.all_duplicates(), reply.first_duplicate_seq(), reply.respond,
                                 [&] { return reply.Accepted(); })) {
    return;
  }
  batches_accepted_.Inc();
  AddAccepted(e.name, reply.accepted);
  pending_.Remember(reply.batch_id, static_cast<uint32_t>(reply.accepted), reply.chunks);
  reply.respond(reply.Accepted());
}

}  // namespace nomnom
