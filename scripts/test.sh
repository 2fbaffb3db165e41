#!/usr/bin/env bash
# Runs every check CI runs, installing what a fresh machine lacks: formatting, lints,
# and all tests. Tests build in the release profile: the image's `dist` profile is release
# plus whole-program optimisation, whose final links would take too long for every test
# binary.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2
rustup component add rustfmt clippy
# Tools the tests drive: a moto server (S3 and SageMaker on loopback) for the registry
# tests; the OpenAPI validator, the schemathesis fuzzer and the Prometheus text parser
# for the API tests; Triton's own clients (HTTP and gRPC) for the Open Inference Protocol
# tests and the benchmark; and the ONNX example's training and export stack
# (scikit-learn, LightGBM, XGBoost, skl2onnx, onnxmltools, onnxruntime), which the
# packaging tests run and the ONNX engine's operator tests compare against.
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
  'moto[server]==5.2.1' 'schemathesis==4.32.5' 'openapi-spec-validator==0.9.0' 'prometheus-client==0.26.0' \
  'tritonclient[http,grpc]==2.73.0' \
  -r examples/sklearn/requirements.txt
# Headless Chromium renders /docs in the docs test; wrk and h2load (nghttp2-client) drive
# the smoke benchmark's HTTP and gRPC load.
missing=$(for tool in chromium:chromium wrk:wrk h2load:nghttp2-client; do
  command -v "${tool%%:*}" >/dev/null || echo "${tool#*:}"
done)
if [ -n "$missing" ]; then
  sudo=$([ "$(id -u)" -eq 0 ] || echo sudo)
  $sudo apt-get update -qq
  # shellcheck disable=SC2086 # one package name per word
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi

cargo fmt --all --check
cargo clippy --release --workspace --all-targets --locked -- -D warnings
# The host alone, as the container image builds it (the same command, in `release` rather
# than `dist`; prints the binary's size).
scripts/build-release.sh
# The Dockerfile and Kubernetes manifests: rendered, schema-validated, checkov, hadolint.
scripts/check-deploy.sh
cargo test --release --workspace --locked
# The criterion micro-benchmarks, each run once as a test so they cannot rot.
# `--workspace`, as above: the same package set unifies dependency features the same
# way, so this reuses that build instead of compiling wasmtime and the AWS SDKs again.
cargo test --release --workspace --bench runtime --locked
# The benchmark against the ceiling and incumbent servers, in smoke mode (seconds per
# step, one concurrency level): it runs end to end; its figures are not judged here.
python3 bench/run.py --smoke
