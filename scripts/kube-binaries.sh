#!/usr/bin/env bash
# Builds the real kube-apiserver and etcd that the Kubernetes-mode tests run
# (test/kube/harness.ts), from the Go module in test/kube/build/, into a cache
# OUTSIDE the repository keyed by version:
#
#   ${TRELLIS_TEST_CACHE:-~/.cache/trellis-test}/kube-<version>/kube-apiserver
#   ${TRELLIS_TEST_CACHE:-~/.cache/trellis-test}/etcd-<version>/etcd
#   ${TRELLIS_TEST_CACHE:-~/.cache/trellis-test}/gateway-api-<version>/*.yaml
#
# and the upstream Gateway API CRDs (config/crd/standard of the
# sigs.k8s.io/gateway-api Go module, version in test/kube/build/gateway-api.version).
#
# Only the first run on a machine builds (measured: see docs/kubernetes.md);
# later runs print the paths and exit. Without Go it says so and exits 0: the
# Kubernetes tests then skip with that reason. A failed build exits non-zero.
# Niced and at most KUBE_BUILD_JOBS (default 2) packages at a time, because the
# machine is small and shared.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
mod="$root/test/kube/build"
cache="${TRELLIS_TEST_CACHE:-$HOME/.cache/trellis-test}"

# The version a module is required at in test/kube/build/go.mod.
version_of() { awk -v m="$1" '{ if ($1 == "require") $0 = substr($0, 9) } $1 == m && $2 ~ /^v/ { print $2; exit }' "$mod/go.mod"; }
kube_version="$(version_of k8s.io/kubernetes)"
etcd_version="$(version_of go.etcd.io/etcd/server/v3)"
if [ -z "$kube_version" ] || [ -z "$etcd_version" ]; then
  echo "kube-binaries: cannot read the versions from $mod/go.mod" >&2
  exit 1
fi
apiserver="$cache/kube-$kube_version/kube-apiserver"
etcd="$cache/etcd-$etcd_version/etcd"
gateway_version="$(tr -d '[:space:]' < "$mod/gateway-api.version")"
crds="$cache/gateway-api-$gateway_version"

cached() { [ -x "$apiserver" ] && [ -x "$etcd" ] && [ -d "$crds" ]; }
if cached; then
  echo "kube-binaries: cached $apiserver $etcd $crds"
  exit 0
fi

go_bin="$(command -v go || true)"
[ -z "$go_bin" ] && [ -x /usr/local/go/bin/go ] && go_bin=/usr/local/go/bin/go
if [ -z "$go_bin" ]; then
  echo "kube-binaries: no Go toolchain; Kubernetes tests will skip"
  exit 0
fi

mkdir -p "$cache"
# One build at a time per machine (tests or CI may start this concurrently).
exec 9>"$cache/.kube-build.lock"
flock 9
if cached; then
  echo "kube-binaries: cached $apiserver $etcd $crds"
  exit 0
fi

export GOTOOLCHAIN=local GOFLAGS="-p=${KUBE_BUILD_JOBS:-2} -trimpath -buildvcs=false" CGO_ENABLED=0
started=$(date +%s)
echo "kube-binaries: building kube-apiserver $kube_version and etcd $etcd_version with $("$go_bin" version)"
cd "$mod"
# The module download can hit a transient registry error: one retry.
nice -n 15 "$go_bin" mod download || nice -n 15 "$go_bin" mod download

build() { # <out> <package> <ldflags>
  local out="$1" tmp
  mkdir -p "$(dirname "$out")"
  tmp="$(mktemp "$out.XXXXXX")"
  nice -n 15 "$go_bin" build -o "$tmp" -ldflags "-s -w $3" "$2"
  chmod 0755 "$tmp"
  mv -f "$tmp" "$out"
}

if [ ! -d "$crds" ]; then
  dir="$(GOFLAGS= nice -n 15 "$go_bin" mod download -json "sigs.k8s.io/gateway-api@$gateway_version" | awk -F'"' '$2 == "Dir" { print $4 }')"
  [ -d "$dir/config/crd/standard" ] || { echo "kube-binaries: no config/crd/standard in sigs.k8s.io/gateway-api@$gateway_version" >&2; exit 1; }
  rm -rf "$crds.tmp" && mkdir -p "$crds.tmp"
  cp "$dir"/config/crd/standard/*.yaml "$crds.tmp/" && chmod 0644 "$crds.tmp"/*.yaml
  mv "$crds.tmp" "$crds"
fi

minor="${kube_version#v1.}"
minor="${minor%%.*}"
[ -x "$etcd" ] || build "$etcd" ./etcd ""
[ -x "$apiserver" ] || build "$apiserver" k8s.io/kubernetes/cmd/kube-apiserver \
  "-X k8s.io/component-base/version.gitVersion=$kube_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"

echo "kube-binaries: built $apiserver $etcd $crds in $(( $(date +%s) - started )) s"
