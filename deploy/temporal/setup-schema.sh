#!/bin/sh
# Creates or upgrades Temporal's schema in PostgreSQL (run by the temporal-schema job of
# docker-compose.yml in temporalio/admin-tools, before the server starts). Safe to run on every
# `docker compose up`: setup-schema leaves a database that already has a schema version alone,
# and update-schema applies only the versions newer than the one recorded.
set -eu
: "${POSTGRES_SEEDS:?}" "${POSTGRES_USER:?}" "${SQL_PASSWORD:?}"
port=${DB_PORT:-5432}
schema_dir=/etc/temporal/schema/postgresql/v12
for db in "${DBNAME:-temporal}:temporal" "${VISIBILITY_DBNAME:-temporal_visibility}:visibility"; do
  name=${db%%:*}
  kind=${db##*:}
  echo "temporal-schema: $name ($kind)"
  temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$port" -u "$POSTGRES_USER" \
    --db "$name" setup-schema -v 0.0
  temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$port" -u "$POSTGRES_USER" \
    --db "$name" update-schema -d "$schema_dir/$kind/versioned"
done
echo "temporal-schema: up to date"
