#!/usr/bin/env bash
# The whole suite against PostgreSQL and Redis on localhost (called by `make test`).
# Starts PostgreSQL and Redis when they are installed but stopped; stops with a clear message
# when they are missing. Installs Debian's chromium (browser tests), gettext (message checks) and
# nginx (the deploy/ site is checked with `nginx -t`).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=.venv/bin/python
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1

say() { printf '\n== %s\n' "$*"; }
die() { printf '\nmake test: %s\n' "$*" >&2; exit 1; }

need_apt=()
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/sbin/nginx ] || need_apt+=(nginx)
command -v xgettext >/dev/null 2>&1 || need_apt+=(gettext)
if [ ${#need_apt[@]} -gt 0 ]; then
  say "installing ${need_apt[*]} (Debian packages)"
  if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi
  # A package's own service (nginx) is installed, not started: policy-rc.d says no while
  # apt-get runs (only when the machine has none of its own).
  policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    policy=1
  fi
  installed=0
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null \
    || installed=$?
  [ -z "$policy" ] || $SUDO rm -f /usr/sbin/policy-rc.d
  [ "$installed" -eq 0 ] \
    || die "could not install ${need_apt[*]} with apt-get; install them and run again"
fi

say "PostgreSQL"
command -v pg_ctlcluster >/dev/null 2>&1 || command -v pg_isready >/dev/null 2>&1 \
  || die "PostgreSQL is not installed. Install it (apt-get install postgresql) and run again."
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  [ -d /etc/postgresql ] || die "PostgreSQL is installed but has no cluster in /etc/postgresql."
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start \
    || die "PostgreSQL is installed but would not start."
  for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
  pg_isready -q -h 127.0.0.1 -p 5432 || die "PostgreSQL did not come up on 127.0.0.1:5432."
fi
# A role with a password works with trust and with scram authentication alike.
if command -v runuser >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  runuser -u postgres -- psql -q -h 127.0.0.1 -v ON_ERROR_STOP=1 -c "DO \$\$BEGIN IF NOT EXISTS
    (SELECT FROM pg_roles WHERE rolname='portal') THEN CREATE ROLE portal LOGIN CREATEDB SUPERUSER
    PASSWORD 'portal'; END IF; END\$\$;" 2>/dev/null \
  || runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -c "DO \$\$BEGIN IF NOT EXISTS
    (SELECT FROM pg_roles WHERE rolname='portal') THEN CREATE ROLE portal LOGIN CREATEDB SUPERUSER
    PASSWORD 'portal'; END IF; END\$\$;" || die "could not create the PostgreSQL role 'portal'."
fi

say "Redis"
command -v redis-server >/dev/null 2>&1 \
  || die "Redis is not installed. Install it (apt-get install redis-server) and run again."
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || die "Redis would not start."
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || die "Redis did not come up on 127.0.0.1:6379."
fi

export DATABASE_URL=${TEST_DATABASE_URL:-postgres://portal:portal@127.0.0.1:5432/portal}
export REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379/0}
export CHANNELS_REDIS_URL=${TEST_CHANNELS_REDIS_URL:-redis://127.0.0.1:6379/1}
export CACHE_REDIS_URL=${TEST_CACHE_REDIS_URL:-redis://127.0.0.1:6379/2}
export DJANGO_SETTINGS_MODULE=portal.settings_test
mkdir -p test-artifacts

say "lint"
.venv/bin/ruff check .
say "types (mypy)"
.venv/bin/mypy
say "import contracts (import-linter)"
PYTHONPATH=. .venv/bin/lint-imports
say "django checks"
$PY manage.py check
# The migration check reads the migration history of the database in DATABASE_URL; the tests
# themselves use a throwaway test_ database beside it. An empty one is enough.
$PY - <<'PYEOF' || die "could not reach the database in DATABASE_URL"
import os
from urllib.parse import urlparse, urlunparse

import psycopg

url = urlparse(os.environ["DATABASE_URL"])
name = url.path.lstrip("/")
with psycopg.connect(urlunparse(url._replace(path="/postgres")), autocommit=True) as conn:
    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
        conn.execute(f'CREATE DATABASE "{name}"')
PYEOF
$PY manage.py makemigrations --check --dry-run >/dev/null \
  || die "models changed without a migration: run manage.py makemigrations"

run_pytest() {
  local rc=0
  .venv/bin/pytest "$@" || rc=$?
  if [ "$rc" -eq 5 ]; then echo "(no tests collected in this group)"; rc=0; fi
  return "$rc"
}
say "tests"
run_pytest -m "not browser" -q
say "browser tests"
run_pytest -m browser -q
