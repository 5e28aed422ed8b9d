#!/usr/bin/env bash
# Builds kube-apiserver 1.20.2 from Debian bookworm's own `kubernetes` source package into a cache
# outside the repository, and installs the apt packages the k8s test tier needs (etcd-server,
# containernetworking-plugins). Idempotent: a second run finds the binary in the cache and returns at once.
#   bash scripts/kube-apiserver.sh          # build (about 7 min on 2 cores, 1.3 GB peak) or cache hit
#   bash scripts/kube-apiserver.sh --path   # print the cached binary's path (exit 1 if not built)
# The cache directory can be moved with NODEMESH_KUBE_CACHE. Run as root.
set -euo pipefail

VERSION=1.20.2
CACHE=${NODEMESH_KUBE_CACHE:-/var/cache/nodemesh/kube-apiserver-$VERSION}
BIN="$CACHE/kube-apiserver"
# What the cached binary was built with; a binary without the current stamp is rebuilt.
STAMP="$CACHE/build-stamp"
WANT_STAMP="v$VERSION reflect2-1.0.2"
SOURCES_FILE=/etc/apt/sources.list.d/nodemesh-bookworm-src.sources

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

if [ "${1:-}" = "--path" ]; then
  [ -x "$BIN" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT_STAMP" ] && { echo "$BIN"; exit 0; }
  echo "kube-apiserver $VERSION is not built: run 'bash scripts/kube-apiserver.sh' as root" >&2
  exit 1
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "kube-apiserver.sh needs root (apt-get install, /var/cache): run it as root" >&2
  exit 1
fi

apt_updated=0
apt_update_once() {
  if [ "$apt_updated" = 0 ]; then apt-get update -qq; apt_updated=1; fi
}

# Runtime packages of the k8s tier: etcd for the API server, and the reference CNI plugins
# (bridge, host-local, loopback) that the lab's Kubernetes mode invokes as a container runtime does.
missing=()
for p in etcd-server containernetworking-plugins; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  apt_update_once
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ -x "$BIN" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT_STAMP" ] && "$BIN" --version 2>/dev/null | grep -q "v$VERSION"; then
  say "kube-apiserver $VERSION cached at $BIN"
  exit 0
fi

# Source lines: a deb-src entry for bookworm, in a file of our own, only if no deb-src entry exists.
if ! grep -rqsE '^(deb-src|Types:.*deb-src)' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  say "adding a bookworm deb-src entry in $SOURCES_FILE"
  cat > "$SOURCES_FILE" <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  apt_updated=0
fi
apt_update_once

build_deps=()
# golang-github-modern-go-reflect2-dev: see the vendor replacement below.
for p in golang-go dpkg-dev make rsync golang-github-modern-go-reflect2-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || build_deps+=("$p")
done
if [ "${#build_deps[@]}" -gt 0 ]; then
  say "installing build tools: ${build_deps[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${build_deps[@]}" >/dev/null
fi

work=$(mktemp -d /var/tmp/nodemesh-kube-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
say "fetching Debian's kubernetes source package into $work"
(cd "$work" && apt-get source -qq --only-source "kubernetes=$VERSION*" >/dev/null 2>&1 || apt-get source -qq kubernetes >/dev/null)
src=$(find "$work" -maxdepth 1 -mindepth 1 -type d -name 'kubernetes-*' | head -n1)
if [ -z "$src" ] || [ ! -d "$src/cmd/kube-apiserver" ]; then
  echo "the kubernetes source package has no cmd/kube-apiserver (need bookworm's $VERSION)" >&2
  exit 1
fi

# The source vendors reflect2 1.0.1, whose map iteration faults under Go >= 1.18 (bookworm's Go is 1.19): the API
# server crashed (SIGSEGV in mapiterinit) on the first custom resource it encoded. Debian's reflect2 1.0.2 fixes it.
rm -rf "$src/vendor/github.com/modern-go/reflect2"
cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$src/vendor/github.com/modern-go/reflect2"
sed -i 's|^# github.com/modern-go/reflect2 v1.0.1$|# github.com/modern-go/reflect2 v1.0.2|' "$src/vendor/modules.txt"
sed -i 's|github.com/modern-go/reflect2 v1.0.1|github.com/modern-go/reflect2 v1.0.2|' "$src/go.mod"

say "building kube-apiserver $VERSION (about 7 min on 2 cores)"
start=$(date +%s)
# The version is stamped by hand: the source package has no .git to derive it from.
(cd "$src" && KUBE_GIT_VERSION="v$VERSION" KUBE_GIT_TREE_STATE=clean GOFLAGS=-mod=vendor \
  make WHAT=cmd/kube-apiserver >"$work/build.log" 2>&1) || { tail -n 40 "$work/build.log" >&2; exit 1; }
out=$(find "$src/_output" -type f -name kube-apiserver -perm -u+x | head -n1)
mkdir -p "$CACHE"
install -m 0755 "$out" "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
echo "$WANT_STAMP" > "$STAMP"
say "built $BIN in $(( $(date +%s) - start )) s"
