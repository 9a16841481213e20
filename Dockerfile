# ota-server container image: built on Debian 12, run on debian:12-slim as a
# non-root user. docker-compose.yml runs it (two replicas behind nginx).
#
#   docker build -t ota-server:local .
#   docker run --rm ota-server:local --help

# ---------------------------------------------------------------------------
# Stage 1: build ota-server and ota-device with the same Debian packages that
# scripts/deps installs (minus the test-only ones: with OTA_TESTS=OFF nothing
# needs cmocka, PostgreSQL, python3-boto3 or node).
FROM debian:12 AS build

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config \
        libh2o-evloop-dev libh2o-dev-common libwslay-dev zlib1g-dev \
        libpq-dev libcurl4-openssl-dev libssl-dev libjansson-dev uuid-dev libzstd-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# Only what the build reads (test/ is not needed with OTA_TESTS=OFF), so edits
# to tests, scripts or docs do not invalidate the build layer. A new top-level
# source directory must be added here too.
COPY CMakeLists.txt ./
COPY cmake/ cmake/
COPY include/ include/
COPY common/ common/
COPY migrations/ migrations/
COPY server/ server/
COPY device/ device/

# Release (-O3): the configuration scripts/test builds and runs in build/.
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DOTA_TESTS=OFF \
 && cmake --build build -j"$(nproc)" --target ota-server ota-device \
 && strip build/ota-server build/ota-device

# ---------------------------------------------------------------------------
# Stage 2: the runtime. Only the shared libraries the two programs link
# (libh2o-evloop pulls libwslay and zlib), CA certificates for https:// S3
# endpoints and release sources, and curl for the health check (it reuses
# libcurl4, which ota-server needs anyway, so it costs a few hundred KiB).
FROM debian:12-slim

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libh2o-evloop0.13 libwslay1 zlib1g \
        libpq5 libjansson4 libssl3 libuuid1 libcurl4 libzstd1 \
        ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 ota \
 && useradd --system --uid 10001 --gid ota --home-dir /var/lib/ota --no-create-home \
        --shell /usr/sbin/nologin ota \
 && install -d -o ota -g ota -m 0750 /var/lib/ota \
 && install -d -o ota -g ota -m 0700 /var/lib/ota/keys

COPY --from=build /src/build/ota-server /src/build/ota-device /usr/local/bin/

# /var/lib/ota/keys exists (owned by ota) in the image, so a fresh named volume
# mounted there starts with that owner and mode: compose shares one such volume
# between the replicas, which then all sign manifests with the same key (the
# first to start creates it, O_EXCL; the others wait for it and read it).
WORKDIR /var/lib/ota
USER ota

ENV OTA_LISTEN=0.0.0.0:8080 \
    OTA_SIGNING_KEY=/var/lib/ota/keys/signing-key.pem \
    OTA_STORAGE_DIR=/var/lib/ota/blobs

EXPOSE 8080

# /healthz answers without the database, once migrations are applied and the
# listener is up; the server waits up to 60 s for PostgreSQL at start.
HEALTHCHECK --interval=10s --timeout=3s --start-period=90s --retries=3 \
    CMD curl -fsS -o /dev/null "http://127.0.0.1:${OTA_LISTEN##*:}/healthz" || exit 1

# ota-server handles SIGTERM itself (stops accepting, finishes requests in
# progress for up to 10 s, exits 0); compose gives it 20 s.
ENTRYPOINT ["/usr/local/bin/ota-server"]
CMD ["serve"]
