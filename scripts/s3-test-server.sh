#!/usr/bin/env bash
# An S3-compatible server for the tests: moto's server mode (PyPI `moto[server]`, pinned below),
# installed into a virtual environment on first use.
#
#   scripts/s3-test-server.sh install    install if missing; print the moto_server path
#   scripts/s3-test-server.sh PORT       run it on 127.0.0.1:PORT in the foreground
#
# moto keeps everything in memory and accepts any credentials. The environment lives in
# BASALT_S3_VENV (default ~/.cache/basalt/moto-venv), outside target/ so `cargo clean` keeps it.
# Then: BASALT_TEST_API_S3=http://127.0.0.1:PORT cargo test --test api
set -euo pipefail

moto_version="5.2.5"
venv="${BASALT_S3_VENV:-$HOME/.cache/basalt/moto-venv}"

install() {
  if [ -x "$venv/bin/moto_server" ] &&
    [ "$("$venv/bin/python" -c 'import moto; print(moto.__version__)' 2>/dev/null)" = "$moto_version" ]; then
    return
  fi
  if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    echo "installing python3-venv" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
  fi
  echo "installing moto[server]==$moto_version into $venv" >&2
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$moto_version" >&2
}

case "${1:-}" in
  install)
    install
    echo "$venv/bin/moto_server"
    ;;
  '' | *[!0-9]*)
    echo "usage: $0 install | PORT" >&2
    exit 2
    ;;
  *)
    install
    exec "$venv/bin/moto_server" -H 127.0.0.1 -p "$1"
    ;;
esac
