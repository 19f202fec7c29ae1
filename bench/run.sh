#!/usr/bin/env bash
# Benchmarks Basalt's hot paths with wrk on loopback and prints a table (see bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk
fi
cargo build --locked --release
exec python3 bench/bench.py --bin target/release/basalt "$@"
