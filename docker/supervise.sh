#!/usr/bin/env bash
# PID 1 of the image (under tini): PostgreSQL through the official entrypoint, and the pg_durable
# worker next to it. The worker runs in the same container on purpose: steps authenticate as the
# submitting roles over the local Unix socket (trust), which never leaves the container; a second
# container would need a shared socket volume or passwords for every tenant role.
set -euo pipefail

socket=/var/run/postgresql
db="${POSTGRES_DB:-${POSTGRES_USER:-postgres}}"

# The worker serves /metrics and /healthz here (loopback only unless PG_DURABLE_METRICS_HOST says
# otherwise, e.g. 0.0.0.0 to let Prometheus scrape the container).
metrics_port="${PG_DURABLE_METRICS_PORT:-9187}"

if [ "${1:-}" = healthcheck ]; then
  # Healthy = the worker's own last heartbeat is fresh (within 3 heartbeats, 15 s by default):
  # /healthz answers 200 then, 503 while it waits for the database or pg_durable.
  exec node -e 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' \
    "http://127.0.0.1:${metrics_port}/healthz"
fi

docker-entrypoint.sh "$@" &
pg_pid=$!
worker_pid=
stop() {
  if [ -n "$worker_pid" ] && kill -TERM "$worker_pid" 2>/dev/null; then
    wait "$worker_pid" || true
  fi
  kill -TERM "$pg_pid" 2>/dev/null || true
  wait "$pg_pid"
}
trap stop TERM INT

(
  # A TERM to this subshell must reach the worker (bash would only act on it after its foreground
  # child exits): run the worker in the background and forward the signal, so it drains and exits.
  child=
  trap 'if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null || true; wait "$child" || true; fi; exit 0' TERM INT
  # Wait for the final server (not the temporary one the entrypoint runs init scripts on): the init
  # script leaves a marker once pg_durable is installed.
  until [ -f "$PGDATA/pg_durable.initialized" ] && pg_isready -h "$socket" -q; do sleep 0.5; done
  while kill -0 "$pg_pid" 2>/dev/null; do
    gosu postgres node /opt/pg_durable/dist/cli.js worker \
      --database-url "postgresql://pg_durable_worker@/${db}?host=${socket}" \
      --metrics-port "${metrics_port}" &
    child=$!
    wait "$child" || true
    child=
    sleep 1
  done
) &
worker_pid=$!
wait "$pg_pid"
