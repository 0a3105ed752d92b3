#!/usr/bin/env bash
# Build the ccfraud SageMaker container image (docker/Dockerfile) in one command.
#
#   scripts/build-image.sh [--local-base] [--tag TAG] [--binary PATH] [--base IMAGE]
#
# Without --binary, builds the binary first: `cargo build --release --locked`
# into CARGO_TARGET_DIR (default ~/.cache/ccfraud/target). The binary and the
# Dockerfile are staged into a temporary build context, so the context is a few
# MB whatever lies in the repository.
#
# Base image (build arg BASE): gcr.io/distroless/cc-debian12 by default, which
# needs registry access. --local-base instead makes `ccfraud-base:local` from
# this machine's own files with `docker import`: exactly the shared libraries
# `ldd` lists for the binary (dynamic loader included, symlinks kept), the CA
# bundle if present, an /etc/passwd with root, and /tmp (mode 1777). The same
# Dockerfile is then built on top of it. The binary must have been built
# against this machine's glibc (it is, when cargo ran here).
#
# Prints the image size and fails when it exceeds 40 MB. The last line of
# stdout is the tag.
#
# Environment: CARGO_TARGET_DIR, CCFRAUD_BIN (default for --binary),
# CCFRAUD_BASE (default for --base), CCFRAUD_MAX_IMAGE_BYTES (default 40000000).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TAG="ccfraud:latest"
BINARY="${CCFRAUD_BIN:-}"
BASE="${CCFRAUD_BASE:-gcr.io/distroless/cc-debian12}"
LOCAL_BASE=0
LOCAL_BASE_TAG="ccfraud-base:local"
MAX_BYTES="${CCFRAUD_MAX_IMAGE_BYTES:-40000000}"

die() { echo "build-image: $*" >&2; exit 1; }
log() { echo "build-image: $*" >&2; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --local-base) LOCAL_BASE=1 ;;
        --tag) [ $# -ge 2 ] || die "--tag needs a value"; TAG="$2"; shift ;;
        --tag=*) TAG="${1#*=}" ;;
        --binary) [ $# -ge 2 ] || die "--binary needs a value"; BINARY="$2"; shift ;;
        --binary=*) BINARY="${1#*=}" ;;
        --base) [ $# -ge 2 ] || die "--base needs a value"; BASE="$2"; shift ;;
        --base=*) BASE="${1#*=}" ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
[ -n "$TAG" ] || die "--tag must not be empty"

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine (is dockerd running, may you use it?)"

# ---- the binary --------------------------------------------------------------
if [ -z "$BINARY" ]; then
    command -v cargo >/dev/null || die "cargo not found; install Rust or pass --binary PATH"
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ccfraud/target}"
    log "cargo build --release --locked (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    (cd "$ROOT" && cargo build --release --locked) >&2
    BINARY="$CARGO_TARGET_DIR/release/ccfraud"
fi
[ -f "$BINARY" ] || die "binary not found: $BINARY"
[ -x "$BINARY" ] || die "binary is not executable: $BINARY"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/ccfraud-image.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

# ---- --local-base: a base image from this machine's runtime files -------------

# Copies absolute path $1 into rootfs $2, keeping every symlink on the way
# (e.g. /lib -> usr/lib, /lib64/ld-linux-x86-64.so.2 -> ../lib/...), and the
# file it finally points to.
copy_path() {
    local path="$1" rootfs="$2" prefix="" comp rest link target depth="${3:-0}"
    [ "$depth" -lt 40 ] || die "too many symlinks resolving $1"
    rest="${path#/}"
    while [ -n "$rest" ]; do
        comp="${rest%%/*}"
        if [ "$comp" = "$rest" ]; then rest=""; else rest="${rest#*/}"; fi
        case "$comp" in ""|.) continue ;; ..) prefix="$(dirname "${prefix:-/}")"; prefix="${prefix%/}"; continue ;; esac
        link="$prefix/$comp"
        if [ -L "$link" ]; then
            target="$(readlink "$link")"
            if [ ! -e "$rootfs$link" ] && [ ! -L "$rootfs$link" ]; then
                mkdir -p "$rootfs$prefix"
                ln -s "$target" "$rootfs$link"
            fi
            case "$target" in /*) ;; *) target="${prefix:-}/$target" ;; esac
            # Continue from the symlink's target, then the rest of the path.
            copy_path "$target${rest:+/$rest}" "$rootfs" $((depth + 1))
            return
        fi
        prefix="$link"
    done
    if [ -d "$path" ]; then
        mkdir -p "$rootfs$path"
    else
        mkdir -p "$rootfs$(dirname "$path")"
        cp -p "$path" "$rootfs$path"
    fi
}

make_local_base() {
    local rootfs="$TMP/rootfs" lddout libs lib
    mkdir -p "$rootfs"
    lddout="$(ldd "$BINARY" 2>&1)" || true
    if grep -q 'not found' <<<"$lddout"; then
        die "ldd cannot resolve every library of $BINARY:"$'\n'"$lddout"
    fi
    # "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and
    # "/lib64/ld-linux-x86-64.so.2 (0x...)"; linux-vdso has no file.
    libs="$(awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' <<<"$lddout" | sort -u)"
    if [ -z "$libs" ]; then
        grep -q 'not a dynamic executable\|statically linked' <<<"$lddout" \
            || die "ldd listed no libraries for $BINARY:"$'\n'"$lddout"
        log "$BINARY is static: the local base holds no libraries"
    fi
    for lib in $libs; do
        copy_path "$lib" "$rootfs"
    done
    if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
        mkdir -p "$rootfs/etc/ssl/certs"
        cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
    fi
    mkdir -p "$rootfs/etc" "$rootfs/tmp" "$rootfs/usr/local/bin"
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' >"$rootfs/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
    chmod 1777 "$rootfs/tmp"
    log "local base files:"
    (cd "$rootfs" && find . -mindepth 1 \( -type f -o -type l \) | sort | sed 's/^/    /') >&2

    local old_id new_id
    old_id="$(docker image inspect -f '{{.Id}}' "$LOCAL_BASE_TAG" 2>/dev/null || true)"
    new_id="$(tar -C "$rootfs" --numeric-owner --owner=0 --group=0 -cf - . \
        | docker import -m "ccfraud local runtime base (from $(uname -n) ldd)" - "$LOCAL_BASE_TAG")"
    log "imported $LOCAL_BASE_TAG ($new_id)"
    # The previous base, now untagged, goes unless an image still uses it.
    if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
        docker rmi "$old_id" >/dev/null 2>&1 || true
    fi
}

if [ "$LOCAL_BASE" = 1 ]; then
    command -v ldd >/dev/null || die "--local-base needs ldd"
    make_local_base
    BASE="$LOCAL_BASE_TAG"
fi

# ---- the image ------------------------------------------------------------------
CTX="$TMP/context"
mkdir -p "$CTX"
cp "$BINARY" "$CTX/ccfraud"
cp "$ROOT/docker/Dockerfile" "$CTX/Dockerfile"
log "context: $(du -sh "$CTX" | cut -f1) (binary + Dockerfile)"

OLD_IMAGE="$(docker image inspect -f '{{.Id}}' "$TAG" 2>/dev/null || true)"
log "docker build --build-arg BASE=$BASE -t $TAG"
if ! docker build --build-arg "BASE=$BASE" -t "$TAG" "$CTX" >&2; then
    [ "$LOCAL_BASE" = 1 ] || log "hint: without registry access, use --local-base"
    die "docker build failed"
fi
NEW_IMAGE="$(docker image inspect -f '{{.Id}}' "$TAG")"
if [ -n "$OLD_IMAGE" ] && [ "$OLD_IMAGE" != "$NEW_IMAGE" ]; then
    docker rmi "$OLD_IMAGE" >/dev/null 2>&1 || true
fi

SIZE="$(docker image inspect -f '{{.Size}}' "$TAG")"
log "image $TAG: $SIZE bytes ($(awk -v s="$SIZE" 'BEGIN {printf "%.1f", s / 1e6}') MB; limit $MAX_BYTES bytes)"
[ "$SIZE" -le "$MAX_BYTES" ] || die "image $TAG is $SIZE bytes, over the $MAX_BYTES-byte limit"
echo "$TAG"
