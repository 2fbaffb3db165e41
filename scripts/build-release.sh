#!/usr/bin/env bash
# The optimised build of predict-host, in the cargo profile named by the argument:
#   scripts/build-release.sh          `release`, what CI builds and tests;
#   scripts/build-release.sh dist     `dist` (release + fat LTO, one codegen unit), what
#                                     the container image ships and the full benchmark runs.
#
# plugin-artifacts/build.rs compiles the bundled price-sensitivity plugin from source for
# wasm32-wasip2 (a nested cargo build) and the host embeds it, so that target must be
# installed. Prints the binary's path and size; stripping is left to the caller (the
# Dockerfile strips the copy it ships).
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v rustup >/dev/null; then
  rustup target add wasm32-wasip2 >/dev/null 2>&1 || rustup target add wasm32-wasip2
fi

profile="${1:-release}"
cargo build --profile "$profile" --locked -p predict-host

binary="${CARGO_TARGET_DIR:-target}/$profile/predict-host"
if [ ! -x "$binary" ]; then
  echo "build-release: $binary is missing after the build" >&2
  exit 1
fi
echo "build-release: $binary ($(du -h "$binary" | cut -f1), $(wc -c <"$binary") bytes)"
