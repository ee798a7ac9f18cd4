// The load's parser threads: each chunk's lines (NDJSON) or records (CSV,
// .tbl) become the rows of encoded parts (EncodedPartBuilder, through
// ChunkParts) or reject records. See core/load/load.h.
#include <memory>
#include <string>
#include <vector>

#include "core/format/row_encoder.h"
#include "core/load/load.h"
#include "core/load/records.h"

namespace nomnom::load_internal {

void Load::StartParts(const ParseTask& task, ChunkParts* parts) {
  const size_t n = hash_routing_ ? sink_queues_.size() : 1;
  const size_t nchild = options_.derived.size();
  parts->hash_routing = hash_routing_;
  parts->parts.resize(n);
  parts->builders.resize(n);
  for (size_t i = 0; i < n; ++i) {
    // Flat parts are recycled (their buffers keep their room); nested ones
    // are made anew, with their children.
    parts->parts[i] = nested_ ? std::make_unique<EncodedPart>() : part_pool_->Acquire();
    parts->builders[i].Start(parts->parts[i].get(), task.seq, task.chunk, nchild);
  }
  if (nested_) {
    if (hash_routing_ && parts->nested == nullptr) parts->nested = std::make_unique<NestedRowScratch>(nchild);
    if (!hash_routing_) parts->builders[0].BindNested(&parts->in_place);
  } else if (!hash_routing_) {
    parts->builders[0].Reserve(task.chunk->data.size(), task.chunk->line_count);
  }
}

void Load::SendParts(const ParseTask& task, uint64_t rows, ChunkParts* parts) {
  for (auto& b : parts->builders) b.Finish();
  const size_t nsinks = sink_queues_.size();
  progress_->rows_read.fetch_add(rows, std::memory_order_relaxed);
  progress_->bytes_read.fetch_add(task.chunk->data.size(), std::memory_order_relaxed);
  if (hash_routing_) {
    for (size_t i = 0; i < nsinks; ++i) sink_queues_[i]->Push(SinkItem{std::move(parts->parts[i])});
  } else {
    const size_t q = block_routing_ ? (task.seq / block_chunks_) % nsinks : 0;
    sink_queues_[q]->Push(SinkItem{std::move(parts->parts[0])});
  }
}

void Load::ParserDone() {
  if (parsers_running_.fetch_sub(1) == 1) {
    for (auto& q : sink_queues_) q->Close();
  }
}

void Load::ParseFlat(const ParseTask& task, RowEncoder* encoder, ChunkParts* parts) {
  const Chunk& chunk = *task.chunk;
  StartParts(task, parts);
  std::string error;
  uint64_t rows = 0;
  ForEachPaddedLine(std::string_view(chunk.data.data(), chunk.data.size() + kChunkPadding), chunk.data.size(),
                    [&](std::string_view line, uint64_t n, size_t readable) {
                      const uint64_t this_line = chunk.first_line + n - 1;
                      if (line.empty() || ((line[0] == ' ' || line[0] == '\t' || line[0] == '\r') && IsBlank(line)))
                        return true;
                      ++rows;
                      uint64_t key_hash = 0;
                      ByteBuffer* out = parts->RowOut();
                      const size_t start = out->size();
                      const bool ok = encoder->Encode(line, readable, out, hash_routing_ ? &key_hash : nullptr, &error);
                      std::string_view raw = line;
                      if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
                      if (!ok) {
                        Reject(task.source, this_line, raw, std::move(error));
                        error.clear();
                        return true;
                      }
                      parts->AddRow(start, key_hash, RowOrigin{task.source, this_line, raw});
                      return true;
                    });
  SendParts(task, rows, parts);
}

void Load::ParseNested(const ParseTask& task, NestedEncoder* encoder, ChunkParts* parts) {
  const Chunk& chunk = *task.chunk;
  StartParts(task, parts);
  std::string error;
  uint64_t rows = 0;
  ForEachPaddedLine(std::string_view(chunk.data.data(), chunk.data.size() + kChunkPadding), chunk.data.size(),
                    [&](std::string_view line, uint64_t n, size_t readable) {
                      const uint64_t this_line = chunk.first_line + n - 1;
                      if (line.empty() || IsBlank(line)) return true;
                      ++rows;
                      std::string_view raw = line;
                      if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
                      uint64_t key_hash = 0;
                      size_t start = 0;
                      const NestedEncoder::Output& out = parts->NestedOut(&start);
                      if (!encoder->Encode(line, readable, out, hash_routing_ ? &key_hash : nullptr, &error)) {
                        Reject(task.source, this_line, raw, std::move(error));
                        error.clear();
                        return true;
                      }
                      parts->AddNestedRow(start, key_hash, RowOrigin{task.source, this_line, raw});
                      return true;
                    });
  SendParts(task, rows, parts);
}

Status Load::UseColumns(DelimitedEncoder* encoder, const HeaderDecision* columns) const {
  if (columns != nullptr) return encoder->SetColumns(columns->columns);
  std::vector<std::string> names;
  for (const Field& f : entity_.fields) names.push_back(f.name);
  return encoder->SetColumns(names);
}

bool Load::RejectTooLong(uint32_t source, uint64_t line, std::string_view raw) {
  if (raw.size() <= options_.max_line_bytes) return false;
  Reject(source, line, raw.substr(0, 256), TooLong("record of ", raw.size()));
  return true;
}

void Load::ParseDelimited(const ParseTask& task, DelimitedParser* parser, DelimitedEncoder* encoder,
                          ChunkParts* parts) {
  StartParts(task, parts);
  const uint64_t rows = task.columns == nullptr || task.columns->kept.empty()
                            ? ParseRecordsFused(task, parser, encoder, parts)
                            : ParseRecordsKept(task, parser, encoder, parts);
  SendParts(task, rows, parts);
}

uint64_t Load::ParseRecordsFused(const ParseTask& task, DelimitedParser* parser, DelimitedEncoder* encoder,
                                 ChunkParts* parts) {
  // Each record is parsed and encoded in one pass (DelimitedEncoder::
  // ParseAndEncode), with the same rows, rejects and messages as
  // ParseRecordsKept; what a blank or too long record encoded is taken back.
  const Chunk& chunk = *task.chunk;
  const std::string_view text = chunk.data.view().substr(task.skip_bytes);
  std::string error;
  uint64_t rows = 0;
  size_t off = 0;
  uint64_t line = chunk.first_line + task.skip_lines;
  while (off < text.size()) {
    size_t consumed = 0;
    uint64_t lines = 0;
    error.clear();
    uint64_t key_hash = 0;
    ByteBuffer* out = parts->RowOut();
    const size_t start = out->size();
    const auto r = encoder->ParseAndEncode(parser, text.substr(off), /*at_end=*/true, line, out,
                                           hash_routing_ ? &key_hash : nullptr, &consumed, &lines, &error);
    if (consumed == 0) consumed = text.size() - off;  // cannot happen with at_end; never loop
    const std::string_view raw = RecordRaw(text.substr(off, consumed));
    const uint64_t this_line = line;
    off += consumed;
    line += lines;
    if (raw.empty() || IsBlank(raw)) {
      out->Truncate(start);
      continue;
    }
    ++rows;
    if (RejectTooLong(task.source, this_line, raw)) {
      out->Truncate(start);
      continue;
    }
    if (r == DelimitedEncoder::Fused::kParseError || r == DelimitedEncoder::Fused::kNeedMore) {
      // The reject names the line already: "line N, " only when it differs.
      const std::string own = "line " + std::to_string(this_line) + ", ";
      if (error.compare(0, own.size(), own) == 0) error.erase(0, own.size());
      Reject(task.source, this_line, raw, std::move(error));
      continue;
    }
    if (r == DelimitedEncoder::Fused::kRejected) {
      Reject(task.source, this_line, raw, std::move(error));
      continue;
    }
    parts->AddRow(start, key_hash, RowOrigin{task.source, this_line, raw});
  }
  return rows;
}

uint64_t Load::ParseRecordsKept(const ParseTask& task, DelimitedParser* parser, DelimitedEncoder* encoder,
                                ChunkParts* parts) {
  const Chunk& chunk = *task.chunk;
  const std::string_view text = chunk.data.view().substr(task.skip_bytes);
  std::vector<DelimitedField> fields, kept;
  std::string error;
  uint64_t rows = 0;
  ForEachRecordIn(
      text, chunk.first_line + task.skip_lines, parser, &fields, &error,
      [&](uint64_t line, std::string_view raw, bool parsed) {
        ++rows;
        if (RejectTooLong(task.source, line, raw)) return true;
        if (!parsed) {
          Reject(task.source, line, raw, std::move(error));
          return true;
        }
        uint64_t key_hash = 0;
        ByteBuffer* out = parts->RowOut();
        const size_t start = out->size();
        const std::vector<DelimitedField>* values = KeptFields(task.columns.get(), fields, &kept, &error);
        if (values == nullptr || !encoder->Encode(*values, out, hash_routing_ ? &key_hash : nullptr, &error)) {
          Reject(task.source, line, raw, std::move(error));
          return true;
        }
        parts->AddRow(start, key_hash, RowOrigin{task.source, line, raw});
        return true;
      });
  return rows;
}

void Load::ParserDelimitedMain() {
  DelimitedParser parser(dialect_);
  DelimitedEncoder encoder(entity_);
  ChunkParts parts;
  int64_t source = -1;  // whose columns the encoder has
  ParseTask task;
  while (parse_queue_.Pop(&task)) {
    if (cancelled()) continue;
    if (static_cast<int64_t>(task.source) != source) {
      if (Status s = UseColumns(&encoder, task.columns.get()); !s.ok()) {
        Fail(s);
        continue;
      }
      source = task.source;
    }
    ParseDelimited(task, &parser, &encoder, &parts);
  }
  ParserDone();
}

void Load::ParserMain() {
  if (delimited_) {
    ParserDelimitedMain();
    return;
  }
  ChunkParts parts;
  ParseTask task;
  if (nested_) {
    NestedEncoder encoder(entity_, options_.derived, RowEncoderOptions{options_.strict});
    while (parse_queue_.Pop(&task)) {
      if (!cancelled()) ParseNested(task, &encoder, &parts);
    }
  } else {
    RowEncoder encoder(entity_, RowEncoderOptions{options_.strict});
    while (parse_queue_.Pop(&task)) {
      if (!cancelled()) ParseFlat(task, &encoder, &parts);
    }
  }
  ParserDone();
}

}  // namespace nomnom::load_internal
