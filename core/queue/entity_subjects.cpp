#include "core/queue/entity_subjects.h"

#include "core/queue/nats_client.h"

namespace nomnom {

Status CheckEntitySubjects(const std::vector<Entity>& entities) {
  for (const Entity& e : entities) {
    if (JetStreamClient::ValidSubjectToken(e.name)) continue;
    return Status::InvalidArgument("entity '" + e.name + "'" +
                                   (e.source_file.empty() ? std::string() : " (" + e.source_file + ")") +
                                   ": its name is the NATS subject token of its messages, so it must be non-empty "
                                   "and hold no '.', '*', '>', spaces or control characters; rename the entity");
  }
  return Status::Ok();
}

}  // namespace nomnom
