// The JetStream message format shared by everything that publishes rows
// (nomnomd, `nomnom load --via-nats`) and the workers that drain them.
// Documented in core/README.md ("JetStream messages").
//
// A chunk message carries validated rows of one entity as NDJSON (each line
// ends with '\n') on subject <prefix>.<entity>, with headers:
//   Nats-Msg-Id     the chunk id (JetStream deduplication, the worker's ledger key)
//   Nomnom-Entity   entity name
//   Nomnom-Batch    the id a client asks /ingest/status about
//   Nomnom-Chunk    "k/n": this is chunk k (0-based) of the n chunks of that batch
//   Nomnom-Rows     number of rows in the body
//   Nomnom-Format   absent: the body is NDJSON as above. "pgcopy1": the body is
//                   the rows' binary COPY tuples, concatenated, no COPY header
//                   or trailer (core/format/pgcopy_chunk.h); then also
//   Nomnom-Schema   the publisher's SchemaFingerprint of the entity. A worker
//                   whose entity has another fingerprint, or that meets an
//                   unknown format, does not apply the chunk: it dead-letters
//                   it whole with the reason (naming both fingerprints).
//   Nomnom-Body-Hash  only on nomnomd's Idempotency-Key chunks: a name-based
//                   UUID of the request's body, which tells a repeat of the
//                   request from a reuse of its key with another body.
//   `nomnom load --via-nats` and nomnomd's /ingest/batch publish pgcopy1 for
//   entities without derived entities (--publish-format); /ingest/message
//   rows and nested loads are published as NDJSON.
//
// Ids: every chunk belongs to a batch (a UUID) and its Nats-Msg-Id is
// "<batch>:<k>". /ingest/batch returns the batch id. Rows posted to
// /ingest/message are grouped into one-chunk batches; a row's message_id is
// "<batch>.<i>" (i its 0-based position in the chunk), so its status is found
// from the chunk. With an Idempotency-Key the row gets a batch of its own whose
// id is a name-based UUID of the key, so the same key always maps to the same
// message id (and JetStream's duplicate window and the worker's ledger store it
// once).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "core/queue/nats_client.h"

namespace nomnom {

inline constexpr std::string_view kHeaderEntity = "Nomnom-Entity";
inline constexpr std::string_view kHeaderBatch = "Nomnom-Batch";
inline constexpr std::string_view kHeaderChunk = "Nomnom-Chunk";
inline constexpr std::string_view kHeaderRows = "Nomnom-Rows";
inline constexpr std::string_view kHeaderFormat = "Nomnom-Format";
inline constexpr std::string_view kHeaderSchema = "Nomnom-Schema";
inline constexpr std::string_view kHeaderBodyHash = "Nomnom-Body-Hash";
inline constexpr std::string_view kFormatPgCopy1 = "pgcopy1";
// On dead letters:
inline constexpr std::string_view kHeaderError = "Nomnom-Error";
inline constexpr std::string_view kHeaderOriginalId = "Nomnom-Original-Msg-Id";
inline constexpr std::string_view kHeaderLine = "Nomnom-Line";

// What a chunk body holds: NDJSON lines, or pgcopy1 binary COPY tuples
// (Nomnom-Format and Nomnom-Schema headers).
enum class PublishFormat { kNdjson, kPgCopy1 };

// The optional headers of a chunk message: how its body is encoded, and the
// hash of the request it came from.
struct ChunkEncoding {
  PublishFormat format = PublishFormat::kNdjson;
  std::string_view schema;     // kPgCopy1: the entity's SchemaFingerprint (Nomnom-Schema)
  std::string_view body_hash;  // non-empty: Nomnom-Body-Hash (requests with an Idempotency-Key)
};

// The one builder of chunk messages (every publisher uses it, so identical
// rows make identical messages): chunk `index` of the `count` chunks of batch
// `batch_id`, holding `rows` rows of `entity` in `body`, on `subject`; sets
// Nats-Msg-Id (ChunkId), the Nomnom-* headers above and, per `encoding`,
// Nomnom-Format, Nomnom-Schema and Nomnom-Body-Hash. Thread-safe (no state).
OutgoingMessage MakeChunkMessage(std::string subject, std::string_view entity, std::string_view batch_id,
                                 uint32_t index, uint32_t count, uint32_t rows, std::string body,
                                 const ChunkEncoding& encoding = {});

// A random (version 4) UUID, lower-case with dashes. Thread-safe.
std::string NewUuid();
// A name-based (version 5, SHA-1) UUID of `name` in nomnom's namespace.
std::string NameUuid(std::string_view name);

std::string ChunkId(std::string_view batch_id, uint32_t index);  // "<batch>:<k>"
// The id of one /ingest/message row: "<chunk's batch id>.<row>" (what
// ParseStatusId reads back). AppendMessageId writes it onto *out.
std::string MessageId(std::string_view batch_id, uint32_t row);
void AppendMessageId(std::string* out, std::string_view batch_id, uint32_t row);
std::string FormatChunkHeader(uint32_t index, uint32_t count);  // "k/n"
// Parses "k/n" (k < n); nullopt when malformed.
std::optional<std::pair<uint32_t, uint32_t>> ParseChunkHeader(std::string_view s);

// What an id given to /ingest/status refers to.
struct StatusKey {
  enum class Kind { kBatch, kMessage } kind = Kind::kBatch;
  std::string batch_id;  // kBatch: the batch; kMessage: its chunk id (which is also its batch id)
  uint32_t row = 0;      // kMessage: 0-based row in the chunk
};
std::optional<StatusKey> ParseStatusId(std::string_view id);

// --- Reading a chunk message (the workers' side) ---

// What a worker reads from a chunk message's subject and headers. Header
// values are bytes; every string here is made valid UTF-8 (EscapeInvalidUtf8)
// since it goes into PostgreSQL text.
struct ChunkMessage {
  std::string id;            // Nats-Msg-Id ("" when absent)
  std::string entity;        // Nomnom-Entity, else the subject's last token
  std::string batch;         // Nomnom-Batch ("" when absent)
  uint32_t chunk_index = 0;  // Nomnom-Chunk "k/n" (0/1 when absent or malformed)
  uint32_t chunk_count = 1;
  std::string format;  // Nomnom-Format ("" for NDJSON)
  std::string schema;  // Nomnom-Schema ("" when absent)
  uint64_t rows = 0;   // Nomnom-Rows, when valid (required for pgcopy1)
  // Why the message cannot be applied whatever the worker's entities ("" when
  // it may be): no Nats-Msg-Id, an unknown Nomnom-Format, or a pgcopy1 chunk
  // without a valid Nomnom-Rows. The fields above are filled either way (a
  // malformed chunk is dead-lettered under its id, batch and entity).
  std::string malformed;
};

// The first value of a header (case-sensitive name), or nullopt.
using HeaderLookup = std::function<std::optional<std::string>(std::string_view name)>;

// Reads a chunk message; pure (no I/O), thread-safe. Not checked here, as they
// need the worker's entities: whether the entity is known, and a pgcopy1
// chunk's schema and tuple framing.
ChunkMessage ParseChunkMessage(std::string_view subject, const HeaderLookup& header);

}  // namespace nomnom
