#!/usr/bin/env bash
# Every benchmark in bench/, one after the other (called by `make bench`; see bench/README.md).
#   bash scripts/bench.sh                 # all of them
#   bash scripts/bench.sh gateway rating  # some of them (names without bench_ and .py)
# Each prints its figures against a baseline measured in the same run; nothing is asserted.
# The output is also written to test-artifacts/bench-<date>.txt. PostgreSQL and Redis must run
# on localhost (started here when installed but stopped, as `make test` does).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
ALL=(watcher gateway cluster_list api_list live metering rating)

die() { printf '\nmake bench: %s\n' "$*" >&2; exit 1; }

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ] \
    || die "PostgreSQL is not running on 127.0.0.1:5432 (install it: apt-get install postgresql)."
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start \
    || die "PostgreSQL is installed but would not start."
  for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
  pg_isready -q -h 127.0.0.1 -p 5432 || die "PostgreSQL did not come up on 127.0.0.1:5432."
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  command -v redis-server >/dev/null 2>&1 \
    || die "Redis is not running on 127.0.0.1:6379 (install it: apt-get install redis-server)."
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/bench.log || die "Redis would not start."
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

# Throwaway databases named bench_<name>_<pid> are created next to this one (a superuser role:
# the benchmarks create and drop databases) and dropped at the end; Redis databases 12-14 keep
# clear of the test suite's (0-2, and 11 for the worker-kill test's own broker).
export DATABASE_URL=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/bench}
export REDIS_URL=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/12}
export CHANNELS_REDIS_URL=${BENCH_CHANNELS_REDIS_URL:-redis://127.0.0.1:6379/13}
export CACHE_REDIS_URL=${BENCH_CACHE_REDIS_URL:-redis://127.0.0.1:6379/14}
unset DJANGO_SETTINGS_MODULE KUBECONFIG

names=("$@")
[ ${#names[@]} -gt 0 ] || names=("${ALL[@]}")
for name in "${names[@]}"; do
  [ -f "bench/bench_${name}.py" ] || die "no benchmark bench/bench_${name}.py (one of: ${ALL[*]})"
done
mkdir -p test-artifacts
out="test-artifacts/bench-$(date +%Y%m%d-%H%M%S).txt"
failed=()
for name in "${names[@]}"; do
  printf '\n== bench_%s.py (%s)\n' "$name" "$(date +%H:%M:%S)" | tee -a "$out"
  started=$SECONDS
  "$PY" "bench/bench_${name}.py" 2>&1 | tee -a "$out"
  rc=${PIPESTATUS[0]}
  printf '(%s s, exit %s)\n' "$((SECONDS - started))" "$rc" | tee -a "$out"
  [ "$rc" -eq 0 ] || failed+=("$name")
done
printf '\nfigures written to %s\n' "$out"
[ ${#failed[@]} -eq 0 ] || die "failed: ${failed[*]}"
