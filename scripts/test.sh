#!/usr/bin/env bash
# Runs every test, after setting up what the tests need when it is missing:
# nginx (tests/sidecar_nginx.rs puts it in front of `tokenwarden serve`) and
# redis-server, from the system packages. The README's test command and
# `.ci/run` both call this script. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

missing=()
have nginx || missing+=(nginx-light)
have redis-server || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]} (system packages)"
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: no apt-get here; install ${missing[*]} yourself (the tests that need them say they were skipped)" >&2
  else
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq >/dev/null 2>&1 || true
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi
# With the services installed, a test that cannot find one fails instead of
# skipping: nothing is skipped silently.
if have nginx; then export TOKENWARDEN_REQUIRE_NGINX=1; fi
if have redis-server; then export TOKENWARDEN_REQUIRE_REDIS=1; fi

cargo test --all-features "$@"
