#!/usr/bin/env bash
# Builds Kubernetes components (kube-apiserver, kubectl, ...) from the published k8s.io/kubernetes
# Go module with the machine's Go, into $HELIOS_TOOLS_BIN (default .tools/bin). Used by
# scripts/install-tools.sh; nothing is downloaded but Go modules.
#
#   scripts/build-kube.sh VERSION COMPONENT...     e.g. scripts/build-kube.sh v1.37.2 kube-apiserver
#
# The k8s.io/kubernetes module is not meant to be built as a dependency: its go.mod replaces every
# staging module (k8s.io/api, k8s.io/apiserver, ...) with ./staging/src/..., which the module zip
# leaves out, and requires them at v0.0.0. So: copy the module to a writable folder, drop the
# replace lines, pin each staging module to its published v0.<minor>.<patch> twin, and build with
# GOWORK=off GOFLAGS=-mod=mod so Go resolves the rest.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_BIN="${HELIOS_TOOLS_BIN:-$ROOT/.tools/bin}"
version="$1"
shift
staging_version="v0.${version#v1.}"

export GOWORK=off GOFLAGS="-mod=mod -buildvcs=false -trimpath"
module_dir="$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')"
if [[ -z "$module_dir" || ! -d "$module_dir" ]]; then
    echo "build-kube: could not download k8s.io/kubernetes@$version from the Go module proxy" >&2
    exit 1
fi

# The writable copy lives beside Go's own caches, at one path for every checkout, and the build
# is -trimpath: Go's build cache then serves a second checkout (a CI clone), which only links.
src="${XDG_CACHE_HOME:-$HOME/.cache}/helios-tools/kubernetes-$version"
if [[ ! -f "$src/.prepared" ]]; then
    rm -rf "$src"
    mkdir -p "$src"
    # The staging tree is not in the module zip anyway; everything else is needed.
    (cd "$module_dir" && tar --exclude=./staging -cf - .) | (cd "$src" && tar -xf -)
    chmod -R u+w "$src"
    sed -i -E '/=> \.\/staging\//d' "$src/go.mod"
    sed -i -E "s#^(\s+k8s\.io/[a-z0-9-]+(/[a-z0-9-]+)*) v0\.0\.0\$#\1 $staging_version#" "$src/go.mod"
    touch "$src/.prepared"
fi

for component in "$@"; do
    echo "build-kube: building $component $version (first time takes several minutes)"
    tmp="$(mktemp "$TOOLS_BIN/.build-$component.XXXXXX")"
    (cd "$src" && go build -o "$tmp" "./cmd/$component")
    mv -f "$tmp" "$TOOLS_BIN/$component"
    echo "$version" >"$TOOLS_BIN/.$component.version"
    echo "build-kube: $component $version installed at $TOOLS_BIN/$component"
done
