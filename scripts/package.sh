#!/usr/bin/env bash
# Builds every release artifact of Helios into dist/ (docs/packaging.md):
#
#   dist/helios-VERSION-TRIPLE.tar.gz (+ .sha256)     the CLI (static musl when it builds; PGO)
#   dist/helios_policy-VERSION-cp39-abi3-manylinux_*.whl  the Python wheel (abi3, Python >= 3.9)
#   dist/helios_policy-VERSION.tar.gz                 the Python sdist (builds with cargo)
#   dist/helios-policy-VERSION.tgz                    the npm main package (JS loader, types)
#   dist/helios-policy-linux-x64-gnu-VERSION.tgz      the npm per-platform package (the .node addon)
#   dist/SHA256SUMS                                   every file above
#
#   scripts/package.sh              # everything (four release builds, PGO's two among them: several minutes each)
#   scripts/package.sh cli wheel    # only some of: cli, wheel, sdist, npm
#
# Then scripts/test-dist.sh installs each artifact with no Rust toolchain on PATH and runs it.
# Needs cargo, python3 (maturin and auditwheel come from PyPI into target/package-venv), node
# and npm (@napi-rs/cli from helios-node's lock file). For the static CLI: the Rust target
# x86_64-unknown-linux-musl and musl-gcc (Debian's musl-tools, installed here when missing and
# we are root); without them the CLI is the glibc build.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DIST="$ROOT/dist"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"
HOST="$(rustc -vV | sed -n 's/^host: //p')"
# maturin and the napi CLI build for the host, sharing target/HOST with `cargo test`.
export CARGO_BUILD_TARGET="$HOST"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

# The static CLI needs the musl target and a musl C compiler (ring's C and assembly).
musl_ready() {
    rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl || return 1
    if ! command -v musl-gcc >/dev/null 2>&1 && [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q musl-tools >/dev/null 2>&1 || true
    fi
    command -v musl-gcc >/dev/null 2>&1
}

build_cli() {
    local triple="$HOST"
    if musl_ready; then
        triple=x86_64-unknown-linux-musl
    else
        echo "package: no musl target or musl-gcc; the CLI is the glibc build ($HOST)" >&2
    fi
    # Profile-guided (scripts/pgo.sh): a gate 15 % faster and 20 % smaller in memory
    # (docs/performance.md). HELIOS_PGO=0, or no llvm-profdata of rustc's LLVM (pgo.sh exits 3),
    # gives the plain release build; any other failure stops the packaging.
    local bin="" rc=0
    if [[ "${HELIOS_PGO:-1}" != 0 ]]; then
        step "cli: scripts/pgo.sh $triple (profile-guided release build)"
        bin="$("$ROOT/scripts/pgo.sh" "$triple")" || rc=$?  # sets musl-gcc for a musl target itself
        if ((rc == 3)); then
            echo "package: no PGO (see above); the CLI is the plain release build" >&2
            bin=""
        elif ((rc != 0)); then
            return "$rc"
        fi
    fi
    if [[ -z "$bin" ]]; then
        step "cli: cargo build --release --locked -p helios-cli --target $triple"
        CC_x86_64_unknown_linux_musl=musl-gcc cargo build --release --locked -p helios-cli --target "$triple"
        bin="target/$triple/release/helios"
    fi
    local name="helios-$VERSION-$triple" stage
    stage="$(mktemp -d)"
    mkdir "$stage/$name"
    cp "$bin" README.md "$stage/$name/"
    tar -C "$stage" -czf "$DIST/$name.tar.gz" "$name"
    rm -rf "$stage"
    (cd "$DIST" && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")
    # Static: no shared library needed (glibc's ldd says "statically linked" of a static-pie).
    if [[ "$triple" == *musl ]] && readelf -d "$bin" | grep -q NEEDED; then
        echo "package: $bin is not static" >&2
        return 1
    fi
}

# A private virtualenv with maturin and auditwheel (not the test suite's helios-py/.venv).
python_tools() {
    local venv="$ROOT/target/package-venv"
    [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'maturin>=1.9,<2' 'auditwheel>=6'
    PY_TOOLS="$venv/bin"
}

build_wheel() {
    python_tools
    step "wheel: maturin build --release (abi3, manylinux auto-detected and audited)"
    rm -f "$DIST"/helios_policy-*.whl
    # One wheel for every CPython >= 3.9 through the stable ABI (abi3-py39 in helios-py's
    # Cargo.toml, so the test suite's `maturin develop` builds the same extension).
    "$PY_TOOLS/maturin" build --release --locked \
        --manifest-path helios-py/Cargo.toml --out "$DIST"
    local wheel
    wheel="$(ls "$DIST"/helios_policy-*.whl)"
    # auditwheel's own verdict: the tag it grants must be the one the file name claims.
    "$PY_TOOLS/auditwheel" show "$wheel"
}

build_sdist() {
    python_tools
    step "sdist: maturin sdist"
    rm -f "$DIST"/helios_policy-*.tar.gz
    "$PY_TOOLS/maturin" sdist --manifest-path helios-py/Cargo.toml --out "$DIST"
}

build_npm() {
    step "npm: napi build --platform --release, npm pack of helios-policy and its linux-x64-gnu package"
    (cd helios-node && { [[ -x node_modules/.bin/napi ]] || npm ci --no-audit --no-fund; } &&
        npx napi build --platform --release --no-js --dts native.d.ts)
    local platform=linux-x64-gnu
    cp "helios-node/helios.$platform.node" "helios-node/npm/$platform/"
    rm -f "$DIST"/helios-policy-*.tgz
    # The main package names its per-platform packages as optional dependencies, added at pack
    # time (as `napi prepublish` does), so the repository's package.json and lock file stay
    # installable before the platform packages are published.
    local stage
    stage="$(mktemp -d)"
    cp helios-node/package.json helios-node/index.js helios-node/index.mjs helios-node/index.d.ts "$stage/"
    node -e '
        const fs = require("fs"), file = process.argv[1] + "/package.json"
        const pkg = JSON.parse(fs.readFileSync(file, "utf8"))
        pkg.optionalDependencies = Object.fromEntries(process.argv.slice(2).map((p) => [`${pkg.name}-${p}`, pkg.version]))
        delete pkg.scripts.prepare
        delete pkg.devDependencies
        fs.writeFileSync(file, JSON.stringify(pkg, null, 2) + "\n")
    ' "$stage" "$platform"
    (cd "$stage" && npm pack --silent --pack-destination "$DIST" >/dev/null)
    rm -rf "$stage"
    (cd "helios-node/npm/$platform" && npm pack --silent --pack-destination "$DIST" >/dev/null)
    rm -f "helios-node/npm/$platform/helios.$platform.node"
}

parts=("$@")
[[ ${#parts[@]} -gt 0 ]] || parts=(cli wheel sdist npm)
mkdir -p "$DIST"
for part in "${parts[@]}"; do
    case "$part" in
        cli) build_cli ;;
        wheel) build_wheel ;;
        sdist) build_sdist ;;
        npm) build_npm ;;
        *) echo "package: unknown part $part (known: cli, wheel, sdist, npm)" >&2; exit 2 ;;
    esac
done
(cd "$DIST" && find . -maxdepth 1 -type f ! -name SHA256SUMS ! -name '*.sha256' -printf '%f\n' | sort | xargs sha256sum >SHA256SUMS)
step "dist/"
ls -l "$DIST"
