#!/usr/bin/env bash
# Runs every check CI runs, installing what a fresh machine lacks: formatting, lints,
# and all tests. Tests build in the release profile, the same build the image uses.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2
rustup component add rustfmt clippy
# The registry tests run a moto server (S3 and SageMaker on loopback).
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore 'moto[server]==5.2.1'

cargo fmt --all --check
cargo clippy --release --workspace --all-targets --locked -- -D warnings
cargo test --release --workspace --locked
