#!/usr/bin/env bash
# e2e: /ingest/status/{id} before any worker has run (pending, not an error),
# after a worker committed it (processed), and for ids that cannot exist: a
# row past the end of a message's chunk, a row of a multi-chunk batch.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_start_services
e2e_start_daemon --workers 0 --chunk-rows 2

post_json /ingest/message "$(order_json s-1)"
assert_status 202 "POST /ingest/message with no worker running"
mid=$(json_get message_id)
http GET "/ingest/status/$mid"
assert_status 200 "status before any worker created the bookkeeping tables"
assert_eq "$(json_get status)" pending "status of $mid before a worker ran"

batch=$(printf '%s\n%s\n%s\n' "$(order_json s-2)" "$(order_json s-3)" "$(order_json s-4)")
http POST /ingest/batch -H 'Content-Type: application/x-ndjson' --data-binary "$batch"
assert_status 202 "POST /ingest/batch of 3 rows (2 chunks)"
bid=$(json_get batch_id)

e2e_start_worker worker --idle-exit-ms 1500
e2e_wait_pid "$WORKER_PID" 60 "nomnom worker"
assert_eq "$WAIT_RC" 0 "exit code of the worker"

wait_status "$mid" processed 20
wait_status "$bid" processed 20
assert_eq "$(json_get rows)" 3 "rows of batch $bid"
http GET "/ingest/status/${mid%.*}.1"
assert_status 404 "a row past the end of a one-row chunk"
http GET "/ingest/status/$bid.0"
assert_status 404 "a message id made from a multi-chunk batch id"
assert_eq "$(sql "SELECT count(*) FROM orders")" 4 "rows stored"

