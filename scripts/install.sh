#!/usr/bin/env bash
# Installs everything hashtale needs into ./.venv (idempotent; safe to re-run).
#   scripts/install.sh          the service, models and tools
#   scripts/install.sh --test   also test tools, the storyteller judge ([eval]) and Debian's headless Chromium for the browser tests
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch/torchvision first and alone: pip takes the CPU-capable wheels that lie on this machine's disk.
# Every version comes from constraints.txt, the set the tests last passed with (scripts/freeze-constraints.sh).
.venv/bin/python -m pip install --quiet -c constraints.txt torch torchvision
extras=""
if [ "${1:-}" = "--test" ]; then
  extras="[test,eval]"  # eval: the storyteller judge, which its tests load
fi
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".${extras}"

if [ "${1:-}" = "--test" ] && ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "note: install Debian's chromium and chromium-driver for the browser tests" >&2
  fi
fi
echo "hashtale installed in .venv"
