// A fresh load's end (core/pg/fresh_table.h): once every row is in, the key
// is built; rows whose key occurred earlier in input order are found by
// re-reading the inputs (Restage: every row again with its input position)
// and rejected with their raw lines (RejectDuplicates: a third pass, only
// those lines). After an error the load is undone instead. See core/load/load.h.
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/format/pg_binary.h"
#include "core/format/row_encoder.h"
#include "core/load/load.h"
#include "core/load/records.h"

namespace nomnom::load_internal {

void Load::FinishFresh(FreshTable* fresh) {
  Status error;
  {
    std::lock_guard<std::mutex> lock(mu_);
    error = first_error_;
  }
  const std::string table = entity_.QualifiedTable();
  if (!error.ok()) {
    // All or nothing: the rows committed so far go, the key comes back.
    Status undone = fresh->Abandon();
    std::lock_guard<std::mutex> lock(mu_);
    first_error_ =
        Status(first_error_.code(),
               first_error_.message() +
                   (undone.ok() ? "; the " + options_.fresh_name + " load was undone: " + table +
                                      " is empty again, with its primary key"
                                : "; undoing the " + options_.fresh_name + " load failed too (" + undone.message() +
                                      "): the next load into " + table + " cleans it up"));
    if (undone.ok()) inserted_ = 0;
    return;
  }
  std::vector<DuplicateRow> duplicates;
  Status s =
      fresh->Finish([this](PgConnection& conn, const std::string& sql) { return Restage(conn, sql); }, &duplicates);
  if (!s.ok()) {
    Fail(Status(s.code(), s.message() + "; the next load into " + table + " cleans up (empties it, restores its key)"));
    return;
  }
  if (!duplicates.empty()) {
    inserted_.fetch_sub(duplicates.size());
    progress_->rows_committed.fetch_sub(duplicates.size(), std::memory_order_relaxed);
    if (Status r = RejectDuplicates(duplicates, fresh->key_name()); !r.ok()) Fail(r);
  }
}

Status Load::Restage(PgConnection& conn, const std::string& copy_sql) {
  const NdjsonReaderOptions ropts = ReaderOptions();
  RowEncoder encoder(entity_, RowEncoderOptions{options_.strict});
  DelimitedEncoder delimited(entity_);
  std::set<std::pair<uint32_t, uint64_t>> skip;
  {
    std::lock_guard<std::mutex> lock(mu_);
    skip = rejected_lines_;
  }
  Status read_status;
  std::string error;
  auto err = conn.CopyInWith(copy_sql, [&](const PgConnection::CopySendFn& send) {
    ByteBuffer out;
    pg::AppendCopyHeader(out);
    for (uint32_t source = 0; source < options_.inputs.size(); ++source) {
      bool sent = true;
      // Adds the row's input position to the tuple encoded at `start`: two more fields.
      auto add_position = [&](size_t start, uint64_t line_no) {
        auto* count = reinterpret_cast<unsigned char*>(out.data() + start);
        const uint16_t fields = static_cast<uint16_t>(((count[0] << 8) | count[1]) + 2);
        count[0] = static_cast<unsigned char>(fields >> 8);
        count[1] = static_cast<unsigned char>(fields & 0xff);
        out.PutI32(4);
        out.PutU32(source);
        out.PutI32(8);
        out.PutU64(line_no);
        if (out.size() >= (4u << 20)) {
          sent = send(out.view());
          out.clear();
        }
        return sent;
      };
      if (delimited_) {
        bool columns_set = false;
        Status columns_status;
        std::vector<DelimitedField> kept;
        read_status = ForEachRecord(options_.inputs[source], ropts, dialect_, entity_, options_.header, options_.strict,
                                    [&](uint64_t line_no, std::string_view, bool parsed,
                                        const std::vector<DelimitedField>& fields, const HeaderDecision* columns) {
                                      if (!columns_set) {
                                        columns_status = UseColumns(&delimited, columns);
                                        if (!columns_status.ok()) return false;
                                        columns_set = true;
                                      }
                                      if (!parsed || skip.count({source, line_no}) != 0) return true;
                                      const size_t start = out.size();
                                      const std::vector<DelimitedField>* values =
                                          KeptFields(columns, fields, &kept, &error);
                                      if (values == nullptr || !delimited.Encode(*values, &out, nullptr, &error))
                                        return true;  // rejected during the load already
                                      return add_position(start, line_no);
                                    });
        if (read_status.ok()) read_status = columns_status;
      } else {
        read_status =
            ForEachLine(options_.inputs[source], ropts, [&](uint64_t line_no, std::string_view line, size_t readable) {
              if (skip.count({source, line_no}) != 0) return true;
              const size_t start = out.size();
              if (!encoder.Encode(line, readable, &out, nullptr, &error)) {
                error.clear();
                return true;  // rejected during the load already
              }
              return add_position(start, line_no);
            });
      }
      if (!read_status.ok() || !sent) return false;
    }
    pg::AppendCopyTrailer(out);
    return send(out.view());
  });
  if (!read_status.ok()) return read_status;
  if (err) return ToStatus(*err, options_.fresh_name + ": cannot read the input positions of duplicate keys back");
  return Status::Ok();
}

Status Load::RejectDuplicates(const std::vector<DuplicateRow>& duplicates, const std::string& key_name) {
  // The raw lines, for the reject records: read once more, only those lines.
  std::map<uint32_t, std::set<uint64_t>> wanted;
  for (const DuplicateRow& d : duplicates) wanted[d.source].insert(d.line);
  const NdjsonReaderOptions ropts = ReaderOptions();
  std::map<std::pair<uint32_t, uint64_t>, std::string> lines;
  for (const auto& entry : wanted) {
    // Not a structured binding: clang 14 cannot capture those in a lambda.
    const uint32_t source = entry.first;
    const std::set<uint64_t>& want = entry.second;
    auto keep = [&](uint64_t line_no, std::string_view raw) {
      if (want.count(line_no) != 0) lines[{source, line_no}] = std::string(raw);
      return line_no < *want.rbegin();
    };
    Status s = delimited_
                   ? ForEachRecord(options_.inputs[source], ropts, dialect_, entity_, options_.header, options_.strict,
                                   [&](uint64_t line_no, std::string_view raw, bool, const std::vector<DelimitedField>&,
                                       const HeaderDecision*) { return keep(line_no, raw); })
                   : ForEachLine(options_.inputs[source], ropts, [&](uint64_t line_no, std::string_view line, size_t) {
                       if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
                       return keep(line_no, line);
                     });
    if (!s.ok()) return s;
  }
  std::string columns;
  for (size_t k : entity_.key_fields) columns += (columns.empty() ? "" : ", ") + entity_.fields[k].name;
  for (const DuplicateRow& d : duplicates) {
    Reject(d.source, d.line, lines[{d.source, d.line}],
           "duplicate key value violates unique constraint \"" + key_name + "\": Key (" + columns + ")=" + d.key +
               " first occurs at " + options_.inputs[d.first_source] + ":" + std::to_string(d.first_line) +
               ", which was kept (" + options_.fresh_name + ")");
  }
  return Status::Ok();
}

}  // namespace nomnom::load_internal
