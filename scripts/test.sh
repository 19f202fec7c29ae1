#!/usr/bin/env bash
# Every test of Basalt, from a fresh machine: installs what is missing, then checks format and
# lints, makes sure PostgreSQL runs, runs the Rust tests (every store case on SQLite and on
# PostgreSQL), builds the example app, runs the Node compatibility tests and the browser
# end-to-end tests (Debian's Chromium) against the release binary.
#
# PostgreSQL: BASALT_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test) must
# accept connections; each test creates and drops a database `basalt_test_<random>` there.
#
# S3: the HTTP tests run once more on PostgreSQL with every app's files in a fresh bucket of
# moto's S3 server (scripts/s3-test-server.sh installs it into a Python venv), started here on
# a free loopback port and stopped on exit: the scale-out setup, three-node test included. The
# Node compatibility tests run twice too: on SQLite with local files, then with every server on
# a fresh PostgreSQL database `basalt_compat_<random>` and a fresh bucket of moto's server.
#
# Redis: the rate-limit counters' tests need one. Unless BASALT_TEST_REDIS_URL names a server,
# a private redis-server (Debian's package) runs on a free loopback port, without persistence,
# until the script exits. The TLS test starts a redis-server of its own either way.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# moto's S3 server (scripts/s3-test-server.sh) on a free loopback port: start_moto sets s3_pid
# and s3_url and returns once it answers; stop_moto stops it, and runs on exit too.
s3_pid=""
stop_moto() {
  [ -n "$s3_pid" ] || return 0
  kill "$s3_pid" 2>/dev/null || true
  wait "$s3_pid" 2>/dev/null || true
  s3_pid=""
}
redis_pid=""
stop_services() {
  stop_moto
  [ -n "$redis_pid" ] || return 0
  kill "$redis_pid" 2>/dev/null || true
  wait "$redis_pid" 2>/dev/null || true
  redis_pid=""
}
trap stop_services EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
start_moto() {
  local moto_server port
  moto_server=$(scripts/s3-test-server.sh install)
  port=$(free_port)
  mkdir -p target
  "$moto_server" -H 127.0.0.1 -p "$port" >target/s3-test-server.log 2>&1 &
  s3_pid=$!
  s3_url="http://127.0.0.1:$port"
  for _ in $(seq 60); do
    python3 -c "import urllib.request; urllib.request.urlopen('$s3_url/', timeout=1)" 2>/dev/null && return 0
    kill -0 "$s3_pid" 2>/dev/null || break
    sleep 0.5
  done
  echo "moto's S3 server did not answer at $s3_url; its output:" >&2
  cat target/s3-test-server.log >&2
  exit 1
}

need_apt=()
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
installed_postgres=false
if [ -z "${BASALT_TEST_POSTGRES_URL:-}" ] && ! command -v pg_lsclusters >/dev/null 2>&1; then
  need_apt+=(postgresql postgresql-client)
  installed_postgres=true
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  step "installing ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
  echo "Node.js 20.19 or newer is needed (the example app's Vite); found $(node --version)" >&2
  exit 1
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings denied)"
cargo clippy --locked --all-targets -- -D warnings

step "PostgreSQL for the Rust tests"
pg_url="${BASALT_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
if [ -z "${BASALT_TEST_POSTGRES_URL:-}" ]; then
  if ! pg_isready -q -h 127.0.0.1; then
    read -r pg_version pg_cluster _ < <(pg_lsclusters --no-header | head -n 1) || true
    if [ -z "${pg_version:-}" ]; then
      echo "no PostgreSQL cluster found (pg_lsclusters shows none)" >&2
      exit 1
    fi
    echo "starting PostgreSQL $pg_version/$pg_cluster"
    pg_ctlcluster "$pg_version" "$pg_cluster" start
    for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 && break; sleep 1; done
  fi
  if $installed_postgres; then
    # A cluster this script just installed: trust local TCP connections and add `test`.
    hba=$(su postgres -c "psql -Atc 'SHOW hba_file'")
    sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
    su postgres -c "psql -c 'SELECT pg_reload_conf()'" >/dev/null
    su postgres -c "createdb test"
  fi
fi
if ! psql "$pg_url" -Atc 'SELECT 1' >/dev/null; then
  echo "PostgreSQL at $pg_url does not accept connections; the Rust tests need it" \
    "(set BASALT_TEST_POSTGRES_URL to use another server)" >&2
  exit 1
fi

if [ -z "${BASALT_TEST_REDIS_URL:-}" ]; then
  step "Redis for the rate-limit tests"
  redis_port=$(free_port)
  mkdir -p target
  redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
    >target/redis-test-server.log 2>&1 &
  redis_pid=$!
  export BASALT_TEST_REDIS_URL="redis://127.0.0.1:$redis_port"
  for _ in $(seq 50); do
    [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ] && break
    kill -0 "$redis_pid" 2>/dev/null || break
    sleep 0.2
  done
  if [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" != PONG ]; then
    echo "redis-server did not answer on port $redis_port; its output:" >&2
    cat target/redis-test-server.log >&2
    exit 1
  fi
fi

step "Rust tests"
cargo test --locked

step "HTTP tests again with every app on PostgreSQL"
BASALT_TEST_API_POSTGRES=1 cargo test --locked --test api

step "HTTP tests again on PostgreSQL with every app's files on S3 (moto's server on loopback)"
start_moto
BASALT_TEST_API_POSTGRES=1 BASALT_TEST_API_S3="$s3_url" cargo test --locked --test api
stop_moto

step "release build"
cargo build --locked --release

step "example app: type check and production build (examples/react-app)"
(
  cd examples/react-app
  npm ci --no-audit --no-fund --loglevel=error
  npm run build
)

step "Node compatibility tests (altogic@2.3.9)"
(
  cd compat
  npm ci --no-audit --no-fund --loglevel=error
  BASALT_BIN="$PWD/../target/release/basalt" node --test --test-concurrency=1
)

step "Node compatibility tests again on PostgreSQL with files on S3 (moto's server on loopback)"
start_moto
compat_started=$SECONDS
(
  cd compat
  BASALT_BIN="$PWD/../target/release/basalt" BASALT_COMPAT_POSTGRES_URL="$pg_url" \
    BASALT_COMPAT_S3="$s3_url" node --test --test-concurrency=1
)
echo "compatibility tests on PostgreSQL and S3: $((SECONDS - compat_started)) s"
stop_moto

screenshots="$PWD/e2e/screenshots"
step "browser end-to-end tests (the example app in Chromium; screenshots in $screenshots)"
(
  cd e2e
  npm ci --no-audit --no-fund --loglevel=error
  BASALT_BIN="$PWD/../target/release/basalt" E2E_SCREENSHOTS="$screenshots" \
    node --test --test-concurrency=1
)
echo "screenshots of every page: $screenshots"
