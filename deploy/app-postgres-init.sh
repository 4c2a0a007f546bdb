#!/bin/bash
# First start of app-postgres: the lifecycle's state store, its own database and role.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v state_password="$STATE_DB_PASSWORD" <<'SQL'
CREATE ROLE lifecycle LOGIN PASSWORD :'state_password';
CREATE DATABASE lifecycle_state OWNER lifecycle;
SQL
