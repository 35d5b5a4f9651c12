#!/usr/bin/env bash
# What tests/ui and tests/unit/test_compose.py need beyond the venv: Debian's chromium + chromedriver, and
# docker-compose (only for `docker-compose config`). Installs them when missing and we are root (as in CI);
# otherwise says how, and those tests skip with that reason.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} (browser tests, compose validation) ..."
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
    echo "WARNING: could not install ${missing[*]}: the UI / compose tests will skip" >&2
  fi
else
  echo "note: ${missing[*]} missing; the UI / compose tests will skip (install: apt-get install -y ${missing[*]})"
fi
