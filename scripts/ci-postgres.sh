#!/usr/bin/env bash
# A throw-away PostgreSQL server for the PostgreSQL queue tests (tests/TinyGrow.Host.Tests,
# PostgresQueueTests): loopback only, port 55432, database/user/password tinygrow. Idempotent: a
# server already answering there is left alone. As root it installs Debian's `postgresql` if absent;
# the cluster lives in /tmp/tinygrow-ci-postgres (delete it, after `pg_ctl -D ... stop`, to start over).
# Stop it: runuser -u postgres -- pg_ctl -D /tmp/tinygrow-ci-postgres stop
set -euo pipefail
PORT="${TINYGROW_PG_PORT:-55432}"
DATA="${TINYGROW_PG_DATA:-/tmp/tinygrow-ci-postgres}"
NAME=tinygrow

as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }

bin=""
for dir in /usr/lib/postgresql/*/bin; do [ -x "$dir/pg_ctl" ] && bin="$dir"; done
if [ -z "$bin" ]; then
  echo "Installing Debian's postgresql (PostgreSQL queue tests)"
  SUDO=$( [ "$(id -u)" = 0 ] || echo sudo )
  $SUDO apt-get update -qq
  # The package's own cluster is not needed (ours is on another port); do not let it start one.
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
  for dir in /usr/lib/postgresql/*/bin; do [ -x "$dir/pg_ctl" ] && bin="$dir"; done
fi
[ -n "$bin" ] || { echo "ci-postgres: no PostgreSQL server binaries after the install" >&2; exit 1; }

if "$bin/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
  echo "PostgreSQL already answers on 127.0.0.1:$PORT"
else
  if [ ! -f "$DATA/PG_VERSION" ]; then
    rm -rf "$DATA"
    install -d -o postgres -g postgres -m 700 "$DATA"
    as_postgres "$bin/initdb" -D "$DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 >/dev/null
  fi
  # Loopback only; the socket in the data folder (not /run/postgresql, which may not exist).
  as_postgres "$bin/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 \
    -o "-p $PORT -k $DATA -c listen_addresses=127.0.0.1 -c max_connections=100 -c fsync=off" start >/dev/null
  echo "PostgreSQL started on 127.0.0.1:$PORT (data $DATA)"
fi

# The test role and database (idempotent), over the local socket as the superuser.
psql_su() { as_postgres psql -h "$DATA" -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }
if [ "$(psql_su -c "SELECT 1 FROM pg_roles WHERE rolname = '$NAME'")" != 1 ]; then
  psql_su -c "CREATE ROLE $NAME LOGIN PASSWORD '$NAME'"
fi
if [ "$(psql_su -c "SELECT 1 FROM pg_database WHERE datname = '$NAME'")" != 1 ]; then
  psql_su -c "CREATE DATABASE $NAME OWNER $NAME"
fi
echo "PostgreSQL queue tests: Host=127.0.0.1;Port=$PORT;Database=$NAME;Username=$NAME;Password=$NAME"
