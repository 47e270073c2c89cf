#!/usr/bin/env bash
# The chaos suite (called by `make chaos`; see bench/chaos/README.md):
#   bash scripts/chaos.sh                          # every fault, then 20 web SIGTERM trials
#   bash scripts/chaos.sh --only redis-down --trials 0
# It starts a PostgreSQL cluster and Redis servers of its own on ports of its own (55432,
# 56379, 56380 or the next free ones) and never touches the machine's shared servers.
# Needs the PostgreSQL server binaries, redis-server and Debian's chromium (installed here
# when missing, as `make test` does). Exits non-zero on a broken invariant or a 5xx that is
# not a 503; prints its table and writes it to test-artifacts/chaos/table.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

die() { printf '\nmake chaos: %s\n' "$*" >&2; exit 2; }

need_apt=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 \
  || need_apt+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  printf '\n== installing %s (Debian packages)\n' "${need_apt[*]}"
  if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null \
    || die "could not install ${need_apt[*]} with apt-get; install them and run again"
fi
if [ "$(id -u)" -eq 0 ]; then
  command -v runuser >/dev/null 2>&1 && id postgres >/dev/null 2>&1 \
    || die "running as root: initdb needs the 'postgres' system user and runuser"
fi

exec .venv/bin/python -m bench.chaos "$@"
