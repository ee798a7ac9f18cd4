// ValidateLoadOptions (core/load/pipeline.h): the one check of a load's
// option combinations, for the CLI (before it connects anywhere) and RunLoad.
#include <string>

#include "core/load/pipeline.h"

namespace nomnom {

namespace {

// Flat input (CSV, .tbl) cannot carry derived entities nor be published.
Status CheckDelimited(const LoadOptions& options, const Entity& entity, InputFormat format, bool published) {
  const std::string name = InputFormatName(format);
  if (!options.derived.empty()) {
    std::string derived;
    for (const Entity* d : options.derived) derived += (derived.empty() ? "" : ", ") + d->name;
    return Status::InvalidArgument(name + " input is flat rows of one table; entity " + entity.name +
                                   " also fills its derived entities' tables (" + derived +
                                   "), which only NDJSON input can carry");
  }
  if (published) {
    return Status::InvalidArgument(options.publish_name + " publishes JSON rows for the workers; convert " + name +
                                   " input to NDJSON");
  }
  return Status::Ok();
}

// A fresh load: conflict mode error's semantics, into one PostgreSQL table.
Status CheckFresh(const LoadOptions& options, const Entity& entity, bool published) {
  const std::string& what = options.fresh_name;
  if (options.mode != ConflictMode::kError) {
    return Status::InvalidArgument(what + " has " + options.mode_name +
                                   " error's semantics; it cannot be combined with " + options.mode_name + " " +
                                   std::string(ConflictModeName(options.mode)));
  }
  if (published) {
    return Status::InvalidArgument(what + " loads into PostgreSQL; it cannot be combined with " + options.publish_name);
  }
  if (!options.derived.empty()) {
    return Status::InvalidArgument(what + " loads one table; " + entity.name +
                                   " fills its derived entities' tables too (load without " + what + ")");
  }
  return Status::Ok();
}

}  // namespace

Status ValidateLoadOptions(const LoadOptions& options, const Entity& entity, bool published) {
  if (options.inputs.empty()) return Status::InvalidArgument("no input files");
  if (options.jobs < 1 || options.parsers < 1) {
    return Status::InvalidArgument("the numbers of loading connections and parser threads must be at least 1");
  }
  auto format = ResolveInputFormat(options.inputs, options.format);
  if (!format.ok()) return format.status();
  if (*format == InputFormat::kCsv || *format == InputFormat::kTbl) {
    if (Status s = CheckDelimited(options, entity, *format, published); !s.ok()) return s;
  } else if (options.header != HeaderMode::kAuto) {
    return Status::InvalidArgument(options.header_name + " are for CSV and .tbl input");
  }
  if (options.fresh) return CheckFresh(options, entity, published);
  return Status::Ok();
}

}  // namespace nomnom
