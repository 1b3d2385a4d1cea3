#!/usr/bin/env bash
# Runs once, on a fresh data directory: the worker role, the extension, and local-socket trust so
# the worker can open step connections as the submitting roles (TCP keeps password auth).
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "${POSTGRES_DB:-$POSTGRES_USER}" <<'SQL'
CREATE ROLE pg_durable_worker LOGIN SUPERUSER;
CREATE EXTENSION IF NOT EXISTS pg_durable CASCADE;
SQL
if ! grep -Eq '^local[[:space:]]+all[[:space:]]+all[[:space:]]+trust' "$PGDATA/pg_hba.conf"; then
  sed -i '1i local all all trust' "$PGDATA/pg_hba.conf"
fi
touch "$PGDATA/pg_durable.initialized"
