# The varsel binary in a small image (used by docker-compose.yml). BuildKit's cache mounts keep
# the crates registry and the target directory between builds, so a change to varsel's sources
# recompiles only varsel's own crates.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p varsel-api --bin varsel \
    && cp target/release/varsel /usr/local/bin/varsel

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/varsel --create-home varsel \
    && install -d -o varsel -g varsel /var/lib/varsel/data
COPY --from=build /usr/local/bin/varsel /usr/local/bin/varsel
USER varsel
WORKDIR /var/lib/varsel
ENV VARSEL_DATA_DIR=/var/lib/varsel/data
# Liveness of whichever role runs: the API's port, or a worker's metrics port
# (VARSEL_HEALTH_PORT=9464 with VARSEL_WORKER_METRICS_LISTEN=0.0.0.0:9464).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${VARSEL_HEALTH_PORT:-8080}/health/live" || exit 1
# SIGTERM drains gracefully within VARSEL_SHUTDOWN_GRACE_SECS (30 s).
STOPSIGNAL SIGTERM
ENTRYPOINT []
CMD ["varsel", "serve"]
