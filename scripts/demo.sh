#!/usr/bin/env bash
# See the example app: builds examples/react-app for production, then runs Basalt on its
# embedded defaults serving it at http://127.0.0.1:8090/ (mail in the dev mailbox). Extra
# arguments go to `basalt serve`; BASALT_* variables work as usual.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v npm >/dev/null 2>&1; then
  echo "The example app needs Node.js 20.19 or newer with npm (Debian: apt-get install nodejs npm)." >&2
  exit 1
fi

printf '==> building the example app (examples/react-app)\n'
(
  cd examples/react-app
  npm ci --no-audit --no-fund --loglevel=error
  npm run build
)

printf '\n==> Basalt serving the app: open the "app:" address it prints (Ctrl-C stops)\n'
exec cargo run --release -- serve --static-dir examples/react-app/dist "$@"
