# The bakeoff server as a container image: configured only by environment
# variables (docs/CLI.md lists them all; the image sets BIND=0.0.0.0:8000),
# running as a non-root user, with a HEALTHCHECK on /healthz.
#
#   docker build -t bakeoff .
#   docker run --rm -p 8000:8000 \
#       -e DATABASE_URL=postgresql://bakeoff_reader@db.example:5432/bakeoff bakeoff
#   docker run --rm -e DATABASE_URL=... bakeoff seed --contacts 10000
#
# docs/DEPLOY.md says which settings matter behind a load balancer and a
# connection pooler. The build uses the release profile of Cargo.toml, the
# one every benchmark uses (fat LTO, one codegen unit), with Cargo.lock as is.
# BuildKit (docker build's default since 23.0) or buildah is needed for the
# cache mounts.

ARG RUST_VERSION=1

# --- build ----------------------------------------------------------------------
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# Only what the build reads; .dockerignore keeps everything else out.
COPY Cargo.toml Cargo.lock ./
COPY src/ src/
COPY sql/ sql/
# Built into the binary, served at /openapi.json.
COPY docs/openapi.json docs/
# Cargo.toml declares the benchmarks, so cargo wants their files to exist.
COPY benches/ benches/
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -m 0755 target/release/bakeoff /usr/local/bin/bakeoff

# --- runtime --------------------------------------------------------------------
# bookworm-slim, the builder's Debian release, for the same glibc. It has
# bash, which the HEALTHCHECK uses instead of curl (the server has no client
# mode, and curl would add a dozen packages to a 2 MB program's image).
FROM debian:bookworm-slim
RUN groupadd --gid 10001 bakeoff \
    && useradd --uid 10001 --gid bakeoff --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin bakeoff
COPY --from=build /usr/local/bin/bakeoff /usr/local/bin/bakeoff

# Every setting is an environment variable; only the listen address differs
# from the binary's default (127.0.0.1 is unreachable from outside a
# container). DATABASE_URL has no useful default here: give it at run time.
ENV BIND=0.0.0.0:8000
EXPOSE 8000
# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001
# SIGTERM: stop accepting, drain in-flight requests (DRAIN_TIMEOUT_S), exit 0.
STOPSIGNAL SIGTERM

# Liveness only: /healthz never touches the database, so a database outage
# does not get healthy containers restarted (/readyz is for readiness and
# load balancers). The probe speaks HTTP/1.1 over bash's /dev/tcp to the
# port of BIND and wants a 200 status line.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${BIND##*:} && printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && IFS= read -r -t 2 line <&3 && [[ $line == 'HTTP/1.1 200 '* ]]"]

ENTRYPOINT ["/usr/local/bin/bakeoff"]
CMD ["serve"]
