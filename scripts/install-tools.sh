#!/usr/bin/env bash
# Builds the real peers the tests run against (OPA, the CNCF distribution registry, crane, helm) from their Go modules with the machine's
# Go, into the git-ignored .tools/bin of this checkout. Idempotent: a tool already present at the
# pinned version is skipped, and Go's module and build caches (GOPATH/GOCACHE, left at their
# defaults) make a rebuild after a version bump cheap.
#
#   scripts/install-tools.sh            # every tool
#   scripts/install-tools.sh opa        # only the named ones (opa, registry, crane, helm, etcd,
#                                       # kube-apiserver, redis: Debian's redis-server; haproxy:
#                                       # Debian's, for scripts/restart-under-load.sh, not in the
#                                       # default list)
#
# To use an already-installed binary instead, point the tests at it (e.g. HELIOS_OPA_BIN=/usr/bin/opa,
# HELIOS_REGISTRY_BIN, HELIOS_CRANE_BIN, HELIOS_HELM_BIN, HELIOS_REDIS_BIN) and skip this script.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_BIN="${HELIOS_TOOLS_BIN:-$ROOT/.tools/bin}"
mkdir -p "$TOOLS_BIN"

# Pinned versions: bump deliberately, the tests are written against these.
OPA_MODULE="github.com/open-policy-agent/opa"
OPA_VERSION="v1.22.3"
# kube-apiserver for the end-to-end admission tests, built from k8s.io/kubernetes by build-kube.sh.
KUBERNETES_VERSION="v1.37.2"
# The CNCF distribution registry (tag -> digest resolution tests) and crane (pushes test images).
REGISTRY_PACKAGE="github.com/distribution/distribution/v3/cmd/registry"
REGISTRY_VERSION="v3.1.2"
CRANE_PACKAGE="github.com/google/go-containerregistry/cmd/crane"
CRANE_VERSION="v0.22.1"
# helm for the chart tests (helm lint, helm template of charts/helios).
HELM_PACKAGE="helm.sh/helm/v4/cmd/helm"
HELM_VERSION="v4.3.2"

# install_go_tool NAME PACKAGE VERSION: builds PACKAGE@VERSION into $TOOLS_BIN/NAME unless a build
# of that exact version is already there (a stamp file records which version was built).
install_go_tool() {
    local name="$1" package="$2" version="$3"
    local bin="$TOOLS_BIN/$name" stamp="$TOOLS_BIN/.$name.version"
    if [[ -x "$bin" && -f "$stamp" && "$(cat "$stamp")" == "$version" ]]; then
        echo "install-tools: $name $version already in $TOOLS_BIN"
        return 0
    fi
    if ! command -v go >/dev/null 2>&1; then
        echo "install-tools: go is not installed; install Go or set the tool's HELIOS_*_BIN variable" >&2
        return 1
    fi
    echo "install-tools: building $name $version from $package (first time takes a few minutes)"
    # A private build dir so a half-written binary never sits at $bin.
    local tmp
    tmp="$(mktemp -d "$TOOLS_BIN/.build-$name.XXXXXX")"
    if ! GOBIN="$tmp" GOFLAGS="${GOFLAGS:-} -buildvcs=false" go install "$package@$version"; then
        rm -rf "$tmp"
        return 1
    fi
    mv -f "$tmp/$(basename "$package")" "$bin"
    rm -rf "$tmp"
    echo "$version" >"$stamp"
    echo "install-tools: $name $version installed at $bin"
}

install_opa() { install_go_tool opa "$OPA_MODULE" "$OPA_VERSION"; }
install_registry() { install_go_tool registry "$REGISTRY_PACKAGE" "$REGISTRY_VERSION"; }
install_crane() { install_go_tool crane "$CRANE_PACKAGE" "$CRANE_VERSION"; }
install_helm() { install_go_tool helm "$HELM_PACKAGE" "$HELM_VERSION"; }

install_kube() {
    local name="$1"
    if [[ -x "$TOOLS_BIN/$name" && "$(cat "$TOOLS_BIN/.$name.version" 2>/dev/null)" == "$KUBERNETES_VERSION" ]]; then
        echo "install-tools: $name $KUBERNETES_VERSION already in $TOOLS_BIN"
        return 0
    fi
    HELIOS_TOOLS_BIN="$TOOLS_BIN" "$ROOT/scripts/build-kube.sh" "$KUBERNETES_VERSION" "$name"
}

# install_debian_tool COMMAND PACKAGE VAR [VERSION FLAG]: links the machine's COMMAND into the tools dir where
# the tests look, installing Debian's PACKAGE with apt first when it is missing and we may
# (root with apt-get); VAR names the variable that points the tests elsewhere.
install_debian_tool() {
    local command="$1" package="$2" var="$3" version_flag="${4:---version}" found
    found="$(command -v "$command" || true)"
    if [[ -z "$found" ]]; then
        if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
            echo "install-tools: installing Debian's $package"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$package" >/dev/null ||
                { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$package" >/dev/null; }
            found="$(command -v "$command" || true)"
        fi
        if [[ -z "$found" ]]; then
            echo "install-tools: no $command; install Debian's $package (or set $var)" >&2
            return 1
        fi
    fi
    ln -sf "$found" "$TOOLS_BIN/$command"
    echo "install-tools: $command at $found ($("$found" "$version_flag" | head -1))"
}

# etcd for kube-apiserver: Debian's etcd-server (3.4 serves kube-apiserver 1.37).
install_etcd() { install_debian_tool etcd etcd-server HELIOS_ETCD_BIN; }
# redis-server for the scale-out tests (helios-core/tests/redis_fleet.rs).
install_redis() { install_debian_tool redis-server redis-server HELIOS_REDIS_BIN; }
# haproxy (Debian's, 2.6) for scripts/restart-under-load.sh only: not in the default list.
install_haproxy() { install_debian_tool haproxy haproxy HELIOS_HAPROXY_BIN -v; }

tools=("$@")
if [[ ${#tools[@]} -eq 0 ]]; then
    tools=(opa registry crane helm etcd kube-apiserver redis)
fi
for tool in "${tools[@]}"; do
    case "$tool" in
        opa) install_opa ;;
        registry) install_registry ;;
        crane) install_crane ;;
        helm) install_helm ;;
        etcd) install_etcd ;;
        kube-apiserver) install_kube kube-apiserver ;;
        redis) install_redis ;;
        haproxy) install_haproxy ;;
        *) echo "install-tools: unknown tool $tool (known: opa, registry, crane, helm, etcd, kube-apiserver, redis, haproxy)" >&2; exit 2 ;;
    esac
done
