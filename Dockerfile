# marketd: one image for every role (serve, api, worker, migrate, keys, tda).
#
#   docker build -t marketd .
#   docker run --rm -p 8080:8080 marketd serve --addr 0.0.0.0:8080
#
# Stage 1 builds the release binary (librdkafka is compiled from the sources
# vendored in the rdkafka-sys crate: no download beyond crates.io).
FROM rust:1.95-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake pkg-config zlib1g-dev perl python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p marketd \
 && install -D -m 0755 target/release/marketd /out/marketd

# Stage 2: a small runtime with no toolchain, running as a non-root user.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 marketd \
 && useradd --system --uid 10001 --gid marketd --home-dir /var/lib/marketd --create-home marketd
COPY --from=build /out/marketd /usr/local/bin/marketd
USER marketd:marketd
WORKDIR /var/lib/marketd
ENV MARKETD__DATA_DIR=/var/lib/marketd \
    MARKETD__LOG__FORMAT=json
# 8080: HTTP (serve, api); 9090: worker admin (/health, /metrics).
EXPOSE 8080 9090
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/marketd"]
CMD ["serve", "--addr", "0.0.0.0:8080"]
