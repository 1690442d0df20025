#!/usr/bin/env bash
# The README's 60-second tour, terminal 2: `bash examples/tour.sh` from the repository root.
# Needs curl and jq, and the service started as terminal 1 shows. Any step that fails stops
# the tour with the service's own error message.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${DISPATCHER_URL:-http://127.0.0.1:8000}
ADMIN="Authorization: Bearer ${DISPATCHER_ADMIN_TOKEN:?set it as in terminal 1}"
PORT=${RECEIVER_PORT:-9000}

# call METHOD PATH [BODY] [AUTH]: prints the answer's body; stops the tour on an error answer.
call() {
  local answer status
  answer=$(curl -sS -X "$1" "$BASE$2" -H "${4:-$ADMIN}" -H "Content-Type: application/json" \
    ${3:+-d "$3"} -w '\n%{http_code}') || stop "$BASE does not answer; is terminal 1 running?"
  status=${answer##*$'\n'}
  answer=${answer%$'\n'*}
  if [ "$status" -ge 300 ]; then
    stop "$1 $2 answered $status: $(jq -r '.error.message // .' <<<"$answer")"
  fi
  printf '%s\n' "$answer"
}
stop() { echo "tour stopped: $*" >&2; exit 1; }
# until SECONDS COMMAND...: runs COMMAND until it succeeds, for at most SECONDS.
until_ok() {
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || stop "gave up waiting for: $*"
    sleep 0.5
  done
}

echo "1. A key for the service that publishes events (the plain key is shown only now)."
PUB=$(call POST /v1/api-keys '{"role": "publisher", "name": "billing-service"}' | jq -r .key)
PUBLISHER="Authorization: Bearer $PUB"

echo "2. A subscription: where to send which events. The answer holds its signing secret."
SUB=$(call POST /v1/subscriptions \
  "{\"url\": \"http://127.0.0.1:$PORT/webhooks\", \"event_types\": [\"invoice.*\"]}")
jq <<<"$SUB"
SECRET=$(jq -r .secret <<<"$SUB")
SUB_ID=$(jq -r .id <<<"$SUB")

echo "3. A receiver that verifies signatures; it prints what it gets."
WEBHOOK_SECRET=$SECRET .venv/bin/python examples/receiver.py "$PORT" &
RECEIVER=$!
trap 'kill "$RECEIVER" 2>/dev/null || true' EXIT
until_ok 10 curl -s -o /dev/null "http://127.0.0.1:$PORT/"

echo "4. Publish an event: 202 once the event and its deliveries are stored."
call POST /v1/events '{"type": "invoice.paid", "data": {"id": "in_1", "amount": 4200}}' \
  "$PUBLISHER" | jq

echo "5. Its delivery and attempt, once the receiver has it."
delivered() {
  DLV=$(call GET "/v1/deliveries?subscription_id=$SUB_ID&status=succeeded" | jq -r '.data[0].id')
  [ "$DLV" != null ]
}
until_ok 10 delivered
call GET "/v1/deliveries/$DLV" | jq '{status, attempts, last_status_code}'
call GET "/v1/deliveries/$DLV/attempts" | jq '.data[0] | {number, status_code, duration_ms, outcome}'

echo "6. Stop the receiver, publish again, and watch the retries pile up as failed attempts."
kill "$RECEIVER"
wait "$RECEIVER" 2>/dev/null || true
EVT=$(call POST /v1/events '{"type": "invoice.paid", "data": {"id": "in_2"}}' "$PUBLISHER" \
  | jq -r .id)
DLV=$(call GET "/v1/events/$EVT/deliveries" | jq -r '.data[0].id')
retried() { [ "$(call GET "/v1/deliveries/$DLV" | jq .attempts)" -ge 3 ]; }
until_ok 60 retried
call GET "/v1/deliveries/$DLV" | jq '{status, attempts, next_attempt_at, last_error}'
call GET "/v1/deliveries/$DLV/attempts?order=asc" \
  | jq -c '.data[] | {number, started_at, outcome, error}'
echo "Tour done. The dashboard shows the same at $BASE/ui (log in with the admin key)."
