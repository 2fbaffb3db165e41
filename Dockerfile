# syntax=docker/dockerfile:1
#
# predict-host: one Rust binary (linked only against glibc and libgcc) on distroless,
# running as non-root with a read-only root filesystem. The only path it writes is CACHE_DIR.
#
#   docker build -t retail-api .
#   docker run --rm -p 8000:8000 --read-only --tmpfs /var/cache/predict-host:mode=1777 retail-api
#
# With no MODEL_PACKAGE_GROUP or PLUGIN_DIR the container serves the plugin bundled into
# the binary; in Kubernetes (k8s/deployment.yaml) it follows the SageMaker Model Registry.
#
# The build compiles the bundled plugin from source for wasm32-wasip2
# (plugin-artifacts/build.rs runs a nested cargo build), so the build stage needs that
# target. It runs the script CI runs, scripts/build-release.sh, in the `dist` profile:
# `release` (what CI tests) plus whole-program optimisation.

# ---- toolchain: Rust, the wasm32-wasip2 target and cargo-chef ----------------------------
FROM rust:1.95.0-bookworm AS chef
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN rustup target add wasm32-wasip2 \
    && cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

# ---- planner: reduce the workspace to its manifests and lock file (recipe.json) ---------
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# ---- builder: dependencies first (cached while only sources change), then the host ------
FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# Compiles every registry dependency of the host, then downloads the rest of the lock file
# (the plugin's wasm32 dependencies, built by the nested cargo), all in cached layers.
RUN cargo chef cook --profile dist --locked -p predict-host --recipe-path recipe.json \
    && cargo fetch --locked
COPY . .
# The profile keeps line tables; the shipped binary is stripped. The cache directory is
# created here because distroless has no shell.
RUN scripts/build-release.sh dist \
    && mkdir -p /out/cache \
    && strip --strip-all -o /out/predict-host target/dist/predict-host

# ---- runtime: distroless (glibc, libgcc, CA certificates, no shell) ----------------------
FROM gcr.io/distroless/cc-debian12:nonroot
# checkov:skip=CKV_DOCKER_2: Kubernetes probes check health (/health liveness, /ready readiness)
LABEL org.opencontainers.image.title="predict-host" \
      org.opencontainers.image.description="Serves ML predictions from a WebAssembly component plugin" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/predict-host /usr/local/bin/predict-host
# Owned by the runtime user, so the image also works without a volume; in Kubernetes an
# emptyDir is mounted here and the root filesystem is read-only.
COPY --from=builder --chown=65532:65532 /out/cache /var/cache/predict-host
ENV CACHE_DIR=/var/cache/predict-host \
    LOG_FORMAT=json \
    PORT=8000 \
    GRPC_PORT=8001
USER 65532:65532
# HTTP (the API, the Open Inference Protocol over REST, metrics); the Open Inference
# Protocol over gRPC.
EXPOSE 8000 8001
# No HEALTHCHECK: there is no shell or curl in the image, and Kubernetes probes /health
# (liveness) and /ready (readiness) over HTTP.
ENTRYPOINT ["/usr/local/bin/predict-host"]
CMD ["serve"]
