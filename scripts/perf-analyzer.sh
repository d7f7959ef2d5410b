#!/usr/bin/env bash
# Triton's perf_analyzer on these machines: `scripts/perf-analyzer.sh [perf_analyzer options]`.
#
# PyPI's perf-analyzer wheel is built for glibc >= 2.38 and GCC 13's libstdc++ (manylinux_2_38), newer than this
# Debian 12 (glibc 2.36), so pip installs only its 0.1.0 placeholder here. This script downloads the real wheel for
# the manylinux_2_38 platform, and Debian 13's libc6, libstdc++6 and libgcc-s1 packages (apt, not installed: only
# unpacked into var/perf-analyzer/runtime), then runs the binary under that glibc's own loader. The system is not
# touched. Everything else perf_analyzer loads (OpenSSL, zlib) is the system's.
set -euo pipefail
cd "$(dirname "$0")/.."
PA_VERSION=2.60.0
DIR=var/perf-analyzer
BIN=$DIR/wheel/perf_analyzer/bin/perf_analyzer
RUNTIME=$DIR/runtime

if [ ! -x "$BIN" ]; then
  mkdir -p "$DIR/wheel"
  .venv/bin/python -m pip download --quiet --no-deps "perf-analyzer==$PA_VERSION" --only-binary=:all: \
    --platform manylinux_2_38_x86_64 --python-version 3.11 -d "$DIR"
  (cd "$DIR/wheel" && python3 -m zipfile -e ../perf_analyzer-$PA_VERSION-*.whl .)
  chmod +x "$BIN"
fi
if [ ! -x "$RUNTIME/usr/lib64/ld-linux-x86-64.so.2" ]; then
  apt_dir=$(mktemp -d)
  echo "deb http://deb.debian.org/debian trixie main" > "$apt_dir/sources.list"
  apt_opts=(-o Dir::Etc::sourcelist="$apt_dir/sources.list" -o Dir::Etc::sourceparts=- -o Dir::State::Lists="$apt_dir"
            -o APT::Get::List-Cleanup=0)
  mkdir -p "$apt_dir/partial"
  apt-get "${apt_opts[@]}" update -qq
  (cd "$apt_dir" && apt-get "${apt_opts[@]}" download libc6 libstdc++6 libgcc-s1 2>/dev/null)
  mkdir -p "$RUNTIME"
  for deb in "$apt_dir"/*.deb; do dpkg -x "$deb" "$RUNTIME"; done
  rm -rf "$apt_dir"
fi
exec "$RUNTIME/usr/lib64/ld-linux-x86-64.so.2" \
  --library-path "$PWD/$RUNTIME/usr/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu" \
  "$BIN" "$@"
