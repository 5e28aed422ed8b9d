#!/usr/bin/env bash
# Sets up a Debian machine for nodemesh (apt packages, npm packages, BPF + native + TypeScript builds),
# idempotently, then runs the demo or the whole test suite. Run as root.
#   bash scripts/dev.sh demo [--keep]   # bring up examples/lab/basic.yaml, drive traffic, show what agents see
#   bash scripts/dev.sh test            # lint, typecheck, unit + integration + e2e + k8s tests, then the fuzz tier
#                                       # (NODEMESH_FUZZ_SECONDS: its total fuzzing time, default 150)
#   bash scripts/dev.sh setup           # only set up
set -euo pipefail
cd "$(dirname "$0")/.."

# libclang-rt-14-dev: LLVM's libFuzzer, which the fuzz tier's engine links (test/fuzz/engine/).
# prometheus (+ promtool): the monitoring tests scrape a lab and check rules; chromium: the dashboard's browser tests.
APT_PACKAGES=(clang llvm libbpf-dev libelf-dev zlib1g-dev bpftool iproute2 cmake make g++ pkg-config util-linux procps tcpdump libclang-rt-14-dev curl prometheus chromium fonts-dejavu-core)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

require_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "nodemesh needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN): run this as root" >&2
    exit 1
  fi
}

setup_apt() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    say "installing system packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

setup_node() {
  local hint='install Node.js 20 first, e.g. "curl -fsSL https://deb.nodesource.com/setup_20.x | bash - && apt-get install -y nodejs" (Debian 12'"'"'s own nodejs is 18)'
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "Node.js >= 20.17 with npm is required: $hint" >&2
    exit 1
  fi
  if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=17)?0:1)'; then
    echo "Node.js >= 20.17 is required, found $(node -v): $hint" >&2
    exit 1
  fi
  # Reinstall npm packages only when the lockfile changed since the last install.
  local stamp=node_modules/.nodemesh-lock-stamp
  local want
  want=$(sha256sum package-lock.json | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "installing npm packages"
    npm ci --no-audit --no-fund --loglevel=error
    echo "$want" > "$stamp"
  fi
}

build() {
  say "building BPF programs, native addon and TypeScript"
  npm run --silent build
}

# The k8s tier's real kube-apiserver (built once per machine from Debian's source package into
# /var/cache/nodemesh; about 7 minutes on 2 cores the first time, a cache hit afterwards), etcd and the
# reference CNI plugins.
setup_kube() {
  bash scripts/kube-apiserver.sh
}

setup() {
  require_root
  setup_apt
  setup_node
  build
}

cmd=${1:-test}
shift || true
case "$cmd" in
  setup)
    setup
    setup_kube
    ;;
  demo)
    setup
    exec node dist/src/cli/main.js demo "$@"
    ;;
  test)
    setup
    # Only the tests need the API server: the demo does not wait for its build.
    setup_kube
    say "lint"
    npm run --silent lint
    say "typecheck"
    npm run --silent typecheck
    say "tests (unit, integration, e2e, k8s, fuzz) on a fresh host view; a skipped test fails the run"
    NODEMESH_REQUIRE_E2E=1 exec node scripts/run-tests.js --fresh-host unit integration e2e k8s fuzz
    ;;
  *)
    echo "usage: bash scripts/dev.sh demo [--keep] | test | setup" >&2
    exit 2
    ;;
esac
