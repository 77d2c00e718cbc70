#!/usr/bin/env bash
# The browser visualizer (web/, package dynamo-web): install its tools, build it, test it,
# serve it. Needs only Rust (rustup) to start from; apt-get (as root, or through sudo) and npm
# provide chromium and playwright-core. Every install step is skipped when the right version is
# already there, so running `install` twice costs a few seconds.
#
#   scripts/web.sh install   wasm32 target, trunk, wasm-bindgen-cli, chromium, e2e packages
#   scripts/web.sh build     trunk build --release, offline, into web/dist
#   scripts/web.sh test      cargo test -p dynamo-web, then build and run the browser tests
#                            (simulated, its controls, then live against a real cluster of
#                            target/release/dynamo)
#   scripts/web.sh serve     trunk serve (http://127.0.0.1:8080), rebuilding on change
#   scripts/web.sh measure   build, then report the gzipped .wasm size, the frame rate and what
#                            a frame costs with 200+ messages in flight (RUNS=3 for three runs)
set -euo pipefail
cd "$(dirname "$0")/.."

TRUNK_VERSION=0.21.14
# wasm-bindgen-cli must equal the wasm-bindgen crate in Cargo.lock, byte for byte.
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'scripts/web.sh: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    fail "need root (or sudo) to run: $*"
  fi
}

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    step "apt-get update (once)"
    as_root apt-get update
    apt_updated=1
  fi
  step "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
}

check_versions() {
  [ -n "$WASM_BINDGEN_VERSION" ] || fail "no wasm-bindgen in Cargo.lock (run cargo build -p dynamo-web once)"
  grep -q "wasm_bindgen = \"$WASM_BINDGEN_VERSION\"" Trunk.toml ||
    fail "Trunk.toml's [tools] wasm_bindgen must be \"$WASM_BINDGEN_VERSION\" (the version in Cargo.lock)"
}

install() {
  check_versions
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    step "rustup target add wasm32-unknown-unknown"
    rustup target add wasm32-unknown-unknown
  fi
  if [ "$(trunk --version 2>/dev/null)" != "trunk $TRUNK_VERSION" ]; then
    step "cargo install trunk $TRUNK_VERSION (about 8 minutes, once)"
    cargo install trunk --version "$TRUNK_VERSION" --locked
  fi
  if [ "$(wasm-bindgen --version 2>/dev/null | cut -d' ' -f1-2)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]; then
    step "cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION (a few minutes, once)"
    # Its lockfile may name crate versions the registry no longer has: then resolve afresh.
    cargo install wasm-bindgen-cli --version "=$WASM_BINDGEN_VERSION" --locked ||
      cargo install wasm-bindgen-cli --version "=$WASM_BINDGEN_VERSION"
  fi
  local packages=()
  [ -x /usr/bin/chromium ] || packages+=(chromium)
  command -v node >/dev/null || packages+=(nodejs)
  command -v npm >/dev/null || packages+=(npm)
  if [ ${#packages[@]} -gt 0 ]; then apt_install "${packages[@]}"; fi
  local wanted
  wanted=$(node -p "require('./e2e/package.json').dependencies['playwright-core']")
  if [ "$(node -p "try { require('./e2e/node_modules/playwright-core/package.json').version } catch { '' }")" != "$wanted" ]; then
    step "npm ci in e2e/ (playwright-core $wanted; it never downloads a browser)"
    (cd e2e && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
  fi
  step "tools ready: $(trunk --version), $(wasm-bindgen --version), $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
}

build() {
  check_versions
  step "trunk build --release --offline (web/dist; the first build compiles the dependencies)"
  trunk build --release --offline
  local wasm
  wasm=$(ls web/dist/*.wasm)
  step "built $(basename "$wasm"): $(wc -c <"$wasm") bytes, $(gzip -9 -c "$wasm" | wc -c) gzipped"
}

case "${1:-}" in
  install) install ;;
  build)
    install
    build
    ;;
  test)
    step "cargo test -p dynamo-web (view-model logic, natively)"
    cargo test -p dynamo-web
    install
    build
    step "browser test (headless chromium; screenshots in e2e/artifacts/)"
    node e2e/run.mjs
    step "browser test of the controls: links, loss, hover linking, run options, reduced motion"
    node e2e/controls.mjs
    if [ ! -x target/release/dynamo ]; then
      # The default target dir on purpose: the live test runs the binary a person would run.
      step "cargo build --release -p dynamo-native (the live test's cluster)"
      env -u CARGO_TARGET_DIR cargo build --release -p dynamo-native
    fi
    step "live browser test: a real five-process cluster (screenshots in e2e/artifacts/live-*)"
    node e2e/live.mjs
    ;;
  serve)
    install
    step "trunk serve --offline on http://127.0.0.1:8080 (Ctrl-C to stop)"
    exec trunk serve --offline --address 127.0.0.1 --port "${PORT:-8080}"
    ;;
  measure)
    install
    build
    step "frame rate and frame cost with 200+ messages in flight (headless chromium; load $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null))"
    node e2e/measure.mjs --runs "${RUNS:-1}"
    ;;
  *)
    echo "usage: scripts/web.sh install | build | test | serve | measure" >&2
    exit 2
    ;;
esac
