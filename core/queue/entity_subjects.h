// CheckEntitySubjects: every entity's name is a NATS subject token, so that
// its chunks can go to <subject_prefix>.<name>. Called when a program that
// publishes or consumes chunks (nomnomd, `nomnom worker`, `load --via-nats`)
// loads its entities: a name such as "x y", "a..b" or ".lead" is a startup
// error naming the entity and its file, not a 503 on every post (or a
// connection nats-server drops for every publisher) later. Pure: thread-safe.
#pragma once

#include <vector>

#include "core/base/status.h"
#include "core/format/schema.h"

namespace nomnom {

Status CheckEntitySubjects(const std::vector<Entity>& entities);

}  // namespace nomnom
