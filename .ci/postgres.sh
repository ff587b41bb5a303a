#!/usr/bin/env bash
# Make a PostgreSQL server available for the test suite and print its URL on stdout.
# Installs Debian's postgresql when run as root and missing, starts the cluster, and creates the
# role and database idempotently. Prints nothing (exit 0) when it cannot: the suite then skips
# PostgreSQL tests locally and fails them under CI.
set -euo pipefail
log() { echo "postgres.sh: $*" >&2; }

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing postgresql from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq postgresql >&2
  else
    log "PostgreSQL is not installed and we are not root: apt-get install postgresql"
    exit 0
  fi
fi
if [ "$(id -u)" != 0 ]; then
  log "not root: cannot start the cluster myself; set PROVISIOND_TEST_PG_URL"
  exit 0
fi
line=$(pg_lsclusters --no-header 2>/dev/null | head -n1 || true)
if [ -z "$line" ]; then
  ver=$(ls /usr/lib/postgresql | sort -V | tail -n1)
  log "creating cluster $ver/main"
  pg_createcluster "$ver" main >&2
  line=$(pg_lsclusters --no-header | head -n1)
fi
read -r ver name port status _ <<<"$line"
if [ "$status" != online ]; then
  log "starting cluster $ver/$name"
  pg_ctlcluster "$ver" "$name" start >&2
fi
psql_() { su postgres -c "psql -p $port -qtAX $*"; }
for _ in $(seq 1 30); do psql_ "-c 'select 1'" >/dev/null 2>&1 && break; sleep 1; done
if [ "$(psql_ "-c \"select 1 from pg_roles where rolname='provisiond'\"")" != 1 ]; then
  psql_ "-c \"create role provisiond login createdb password 'provisiond'\"" >&2
fi
if [ "$(psql_ "-c \"select 1 from pg_database where datname='provisiond_test'\"")" != 1 ]; then
  psql_ "-c 'create database provisiond_test owner provisiond'" >&2
fi
echo "postgresql://provisiond:provisiond@127.0.0.1:${port}/provisiond_test"
