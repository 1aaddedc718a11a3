#!/usr/bin/env bash
# Creates the two base images docker/Dockerfile builds on, locally, for a machine
# whose Docker engine cannot pull from any registry (only Debian's package mirror
# and crates.io are reachable):
#
#   runtime base  $FLUXO_RUNTIME_BASE  (default fluxo-base/debian:bookworm-slim)
#       a debootstrapped Debian 12 "bookworm" minbase rootfs, trimmed like the
#       official debian:bookworm-slim, loaded with `docker import`.
#   builder base  $FLUXO_BUILDER_BASE  (default fluxo-base/rust:bookworm)
#       the runtime base + build-essential, clang, libclang-dev, pkg-config,
#       ca-certificates (plus the CAs added locally on this host), and this
#       machine's Rust toolchain copied in (rustup's servers are not
#       reachable), laid out like the official rust image:
#       CARGO_HOME=/usr/local/cargo, cargo and rustc on PATH.
#
# Idempotent: an image whose tag already exists is left alone (--force rebuilds).
# Needs root (debootstrap) and apt for debootstrap itself when it is missing.
#
#   docker/base-images.sh                 # both images
#   docker/base-images.sh --runtime-only  # just the runtime base (enough for the
#                                         # runtime-prebuilt target)
#   docker/base-images.sh --force         # rebuild both
#
# Then:
#   docker build -f docker/Dockerfile \
#     --build-arg RUST_IMAGE=fluxo-base/rust:bookworm \
#     --build-arg RUNTIME_IMAGE=fluxo-base/debian:bookworm-slim -t fluxo .
#
# Env: FLUXO_RUNTIME_BASE, FLUXO_BUILDER_BASE (image tags), DEBIAN_MIRROR
# (default http://deb.debian.org/debian), DEBIAN_SUITE (default bookworm),
# RUST_TOOLCHAIN (toolchain directory to copy; default `rustc --print sysroot`),
# LOCAL_CA_DIR (extra CA certificates, *.crt, for the builder base; default
# /usr/local/share/ca-certificates, where Debian keeps locally added ones).
set -euo pipefail

RUNTIME_TAG="${FLUXO_RUNTIME_BASE:-fluxo-base/debian:bookworm-slim}"
BUILDER_TAG="${FLUXO_BUILDER_BASE:-fluxo-base/rust:bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE="${DEBIAN_SUITE:-bookworm}"

runtime_only=0
force=0
for arg in "$@"; do
    case "$arg" in
        --runtime-only) runtime_only=1 ;;
        --force) force=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "base-images.sh: unknown argument $arg (see --help)" >&2; exit 2 ;;
    esac
done

log() { echo "[docker/base-images] $*" >&2; }
have_image() { [[ $force == 0 ]] && docker image inspect "$1" >/dev/null 2>&1; }

work=""
cleanup() { if [[ -n "$work" ]]; then rm -rf "$work"; fi; }
trap cleanup EXIT

# --------------------------------------------------------------------- runtime
build_runtime() {
    if have_image "$RUNTIME_TAG"; then
        log "runtime base $RUNTIME_TAG exists"
        return
    fi
    if ! command -v debootstrap >/dev/null 2>&1; then
        log "installing debootstrap (apt)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
    fi
    work="$(mktemp -d /tmp/fluxo-base.XXXXXX)"
    local root="$work/rootfs"
    log "debootstrap --variant=minbase $SUITE from $MIRROR (a few minutes)"
    local t0=$SECONDS
    debootstrap --variant=minbase --arch=amd64 "$SUITE" "$root" "$MIRROR" \
        >"$work/debootstrap.log" 2>&1 || {
        tail -n 30 "$work/debootstrap.log" >&2
        log "debootstrap failed"
        exit 1
    }
    log "debootstrap done in $((SECONDS - t0)) s"

    # What the official -slim images do: keep docs, man pages and translations out
    # of every later apt-get install, and start out without them.
    mkdir -p "$root/etc/dpkg/dpkg.cfg.d" "$root/etc/apt/apt.conf.d"
    cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
EOF
    cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    cat >"$root/etc/apt/apt.conf.d/docker-no-languages" <<'EOF'
Acquire::Languages "none";
EOF
    cat >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests" <<'EOF'
Apt::AutoRemove::SuggestsImportant "false";
EOF
    local sec_mirror="${MIRROR%/debian}/debian-security"
    rm -f "$root/etc/apt/sources.list"
    cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE ${SUITE}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $sec_mirror
Suites: ${SUITE}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    # Trim: package caches and lists, docs (copyright kept), man, locales, logs.
    find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
    find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
    rm -rf "$root"/usr/share/{man,groff,info,lintian,linda,locale}/* \
        "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* \
        "$root"/var/cache/debconf/*-old "$root"/var/log/* "$root"/tmp/* \
        "$root"/var/tmp/*
    : >"$root/etc/hostname"
    printf 'nameserver 127.0.0.53\n' >"$root/etc/resolv.conf"  # replaced by the engine
    rm -f "$root/etc/machine-id"; : >"$root/etc/machine-id"

    log "docker import -> $RUNTIME_TAG"
    tar --numeric-owner --xattrs -C "$root" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' \
        --message "debootstrap --variant=minbase $SUITE (docker/base-images.sh)" \
        - "$RUNTIME_TAG" >/dev/null
    rm -rf "$work"; work=""
    log "runtime base $RUNTIME_TAG: $(docker image inspect -f '{{.Size}}' "$RUNTIME_TAG" | awk '{printf "%.0f MB", $1/1e6}')"
}

# --------------------------------------------------------------------- builder
build_builder() {
    if have_image "$BUILDER_TAG"; then
        log "builder base $BUILDER_TAG exists"
        return
    fi
    local sysroot="${RUST_TOOLCHAIN:-}"
    if [[ -z "$sysroot" ]]; then
        command -v rustc >/dev/null 2>&1 || {
            log "no rustc on PATH and RUST_TOOLCHAIN unset: cannot make the builder base"
            exit 1
        }
        sysroot="$(rustc --print sysroot)"
    fi
    [[ -x "$sysroot/bin/cargo" && -x "$sysroot/bin/rustc" ]] || {
        log "$sysroot is not a toolchain with cargo and rustc (set RUST_TOOLCHAIN)"
        exit 1
    }
    local version
    version="$("$sysroot/bin/rustc" --version | awk '{print $2}')"
    sysroot="$(cd -P "$sysroot" && pwd)"
    work="$(mktemp -d /tmp/fluxo-base.XXXXXX)"
    # CA certificates added locally on this host (an HTTPS-inspecting proxy's, say)
    # go along, so cargo in the image reaches crates.io the way it does here.
    mkdir -p "$work/ca"
    local ca
    for ca in "${LOCAL_CA_DIR:-/usr/local/share/ca-certificates}"/*.crt; do
        if [[ -f "$ca" ]]; then cp "$ca" "$work/ca/"; fi
    done
    cat >"$work/Dockerfile" <<EOF
FROM $RUNTIME_TAG
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
      build-essential clang libclang-dev pkg-config ca-certificates git \\
 && rm -rf /var/lib/apt/lists/*
COPY ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null
COPY rust /usr/local/rust
ENV RUST_VERSION=$version \\
    CARGO_HOME=/usr/local/cargo \\
    PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN mkdir -p /usr/local/cargo/bin \\
 && for b in /usr/local/rust/bin/*; do ln -s "\$b" /usr/local/cargo/bin/; done \\
 && chmod -R a+rwX /usr/local/cargo \\
 && cargo --version && rustc --version
EOF
    log "building $BUILDER_TAG: Rust $version from $sysroot (docs left out), clang, libclang-dev"
    local t0=$SECONDS
    # The build context is a tar stream: the Dockerfile plus the toolchain renamed
    # to rust/ (its docs and rust-src left out), so nothing is copied to disk.
    local parent base
    parent="$(dirname "$sysroot")"
    base="$(basename "$sysroot")"
    tar -c -C "$work" Dockerfile ca \
        -C "$parent" --exclude="$base/share/doc" --exclude="$base/lib/rustlib/src" \
        --transform "s,^$base,rust,S" "$base" \
        | docker build -q -t "$BUILDER_TAG" - >/dev/null
    rm -rf "$work"; work=""
    log "builder base $BUILDER_TAG built in $((SECONDS - t0)) s"
}

build_runtime
if [[ $runtime_only == 0 ]]; then
    build_builder
fi
