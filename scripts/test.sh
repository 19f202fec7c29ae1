#!/usr/bin/env bash
# Every test of Basalt, from a fresh machine: installs what is missing, then checks format and
# lints, runs the Rust tests and the Node compatibility tests against the release binary.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

need_apt=()
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  step "installing ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings denied)"
cargo clippy --locked --all-targets -- -D warnings

step "Rust tests"
cargo test --locked

step "release build"
cargo build --locked --release

step "Node compatibility tests (altogic@2.3.9)"
(
  cd compat
  npm ci --no-audit --no-fund --loglevel=error
  BASALT_BIN="$PWD/../target/release/basalt" node --test --test-concurrency=1
)
