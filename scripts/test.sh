#!/usr/bin/env bash
# Every test of Basalt, from a fresh machine: installs what is missing, then checks format and
# lints, runs the Rust tests, builds the example app, runs the Node compatibility tests and the
# browser end-to-end tests (Debian's Chromium) against the release binary.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

need_apt=()
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
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

step "Rust tests"
cargo test --locked

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

screenshots="$PWD/e2e/screenshots"
step "browser end-to-end tests (the example app in Chromium; screenshots in $screenshots)"
(
  cd e2e
  npm ci --no-audit --no-fund --loglevel=error
  BASALT_BIN="$PWD/../target/release/basalt" E2E_SCREENSHOTS="$screenshots" \
    node --test --test-concurrency=1
)
echo "screenshots of every page: $screenshots"
