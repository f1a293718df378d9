# syntax=docker/dockerfile:1
#
# kube-lighthouse controller image: a static (musl) binary on distroless, non-root.
#
#   docker build -t ghcr.io/kube-lighthouse/kube-lighthouse:VERSION .   (VERSION: Cargo.toml's)
#
# TLS is rustls (ring), so there is no OpenSSL to link: the binary needs nothing from the
# image but itself (and CA certificates, which distroless/static ships).

ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${RUST_IMAGE} AS builder
ARG TARGET=x86_64-unknown-linux-musl
# musl-tools: musl-gcc, for the C parts of dependencies (ring).
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add "${TARGET}"
WORKDIR /src
# The workspace: the controller (src), the core it shares with the plugin (crates), and the
# manifests of the other members, which cargo reads to resolve the workspace.
COPY Cargo.toml Cargo.lock clippy.toml ./
COPY src ./src
COPY benches ./benches
COPY crates ./crates
COPY charts/kube-lighthouse/files ./charts/kube-lighthouse/files
COPY hack/token-issuer ./hack/token-issuer
# Cache mounts keep the registry and the build between builds (BuildKit). The binary is
# copied out of the cached target directory, which is not part of the image layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target "${TARGET}" -p kube-lighthouse --bin kube-lighthouse \
 && cp "target/${TARGET}/release/kube-lighthouse" /kube-lighthouse \
 && strip /kube-lighthouse

FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title="kube-lighthouse" \
      org.opencontainers.image.description="Azure Lighthouse on Kubernetes: delegated namespace access as RBAC" \
      org.opencontainers.image.source="https://github.com/kube-lighthouse/kube-lighthouse" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /kube-lighthouse /kube-lighthouse
# distroless' nonroot user; the chart also sets runAsUser 65532 and a read-only root.
USER 65532:65532
# metrics, health (see the chart's values.yaml)
EXPOSE 8080 8081
ENTRYPOINT ["/kube-lighthouse"]
