# syntax=docker/dockerfile:1
#
# backup-warden: the controller image.
#
#   docker build -t REGISTRY/backup-warden:TAG .
#
# Two stages. The builder compiles with the official Rust image exactly what
# `cargo build --release --locked` (`make build`) makes; the final image holds that one
# binary on distroless, runs as a numeric non-root user and has no shell or package
# manager. See docs/installation.md for multi-arch builds with buildx.
#
# Both base images are pinned by digest (tag@sha256:...): a tag is moved whenever its
# maintainers rebuild it, so the same commit could otherwise build on different bases. The
# tag stays for readers and for update bots, the digest decides. Each digest is the
# multi-platform index (amd64 and arm64 both resolve from it). To move to a newer build,
# ask the registry and replace the digest (and the base.digest label below) with the
# "Digest:" line these print (the index's, above the per-platform "Manifests:"):
#
#   docker buildx imagetools inspect rust:1.95-bookworm
#   docker buildx imagetools inspect gcr.io/distroless/cc-debian12:nonroot
#
# (or `crane digest IMAGE:TAG`), or let Renovate (its dockerfile manager keeps tag@digest
# pins current) or Dependabot (package-ecosystem: docker) open the pull requests.

# ---------------------------------------------------------------------------------------
# Builder. Debian bookworm, like the final image (distroless cc-debian12), so the binary
# is linked against the same glibc (2.36) it runs with.
FROM rust:1.95-bookworm@sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1 AS builder

# bash with pipefail: a failing command on the left of a pipe fails the step.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

WORKDIR /src

# aws-lc-sys (the TLS crypto of kube, the AWS SDK, octocrab and the Slack client) compiles
# AWS-LC from source with the C compiler of this image and links it statically. It would
# also adopt a system AWS-LC found through OPENSSL_DIR or pkg-config; never do that here,
# so that the binary needs no libcrypto at run time whatever the base image carries.
ENV AWS_LC_SYS_USE_SYSTEM=0

# 1. Dependencies only, cached until Cargo.toml or Cargo.lock changes. Cargo refuses a
#    manifest whose declared targets are missing, so the library, the binary and both
#    [[bench]] targets get empty stand-ins (benches are not built by `cargo build`). The
#    workspace's test-support crate is only a dev-dependency: its manifest is enough, with
#    an empty stand-in library that `cargo build` never compiles.
COPY Cargo.toml Cargo.lock ./
COPY testing/Cargo.toml ./testing/
RUN mkdir -p src benches testing/src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs testing/src/lib.rs \
 && echo 'fn main() {}' > benches/converge_databases.rs \
 && echo 'fn main() {}' > benches/sweep_repositories.rs \
 && cargo build --release --locked \
 && rm -rf src benches

# 2. The sources. COPY keeps the files' own modification times, which can be older than
#    the stand-in build above; cargo would then consider backup-warden up to date and
#    keep the empty binary. Touching the crate roots makes it rebuild the crate (the
#    dependencies stay cached), and the check below proves the binary is the real one:
#    the stand-in prints nothing.
COPY src ./src
COPY benches ./benches
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked \
 && ./target/release/backup-warden version | grep -q '^backup-warden '

# ---------------------------------------------------------------------------------------
# Runtime. distroless/cc, not distroless/static: the binary is a glibc (x86_64/aarch64
# -unknown-linux-gnu) executable that needs libc, libm and libgcc_s, which cc carries and
# static does not. A fully static image would mean building for musl instead, whose
# allocator is markedly slower under tokio's multi-threaded load unless another allocator
# is added to Cargo.toml, and whose C toolchain (for aws-lc-sys) is one more thing to keep
# working; the few MiB that static saves are not worth that. cc also brings the CA
# certificates (/etc/ssl/certs) that TLS to AWS, GitHub and Slack verifies against.
FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
# Where the source lives, e.g. --build-arg SOURCE=https://github.com/ORG/backup-warden
ARG SOURCE=

LABEL org.opencontainers.image.title="backup-warden" \
      org.opencontainers.image.description="Kubernetes controller that enforces the backup policy for RDS databases and GitHub repositories" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot" \
      org.opencontainers.image.base.digest="sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f"

COPY --from=builder /src/target/release/backup-warden /backup-warden

# glibc's malloc raises its mmap threshold each time a large block is freed (up to 32 MiB),
# after which the large bodies of list and watch responses come from the heap and leave
# holes in it that stay resident. A fixed threshold keeps blocks of 128 KiB and more in
# mmap, given back when freed. One arena instead of one per thread keeps the free space in
# one place (the controller waits on the network; per-thread caches take most allocations
# without the arena's lock anyway). Measured by `make bench-scale` (BENCHMARKS.md), which
# runs with this same line, at 2,000 databases: peak RSS 10% lower for the threshold and 4%
# for the arena. No effect on correctness; a binary run outside this image merely keeps
# glibc's defaults.
ENV GLIBC_TUNABLES=glibc.malloc.mmap_threshold=131072:glibc.malloc.arena_max=1

# The numeric uid/gid of distroless' "nonroot" user, so that Kubernetes can verify
# runAsNonRoot without resolving a user name.
USER 65532:65532

# /healthz, /readyz and /metrics (--listen-address, default 0.0.0.0:8080).
EXPOSE 8080

ENTRYPOINT ["/backup-warden"]
CMD ["run"]
