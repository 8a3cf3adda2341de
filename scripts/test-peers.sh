#!/usr/bin/env bash
# Builds the proxyless gRPC peers of the interop tests (test/interop/) outside
# the repository, cached by version and source hash, and prints where they are:
#   grpc-go=<binary>      or  grpc-go-skip=<reason>
#   grpc-python=<python>  or  grpc-python-skip=<reason>
# grpc-go: test/interop/grpc-go built with the Go toolchain through the Go
# module proxy into ~/.cache/trellis-test/grpc-go-xds-<grpc version>-<hash>/
# (~2 min the first time on 2 cores). gRPC C-core: Python grpcio from PyPI in
# a venv at ~/.cache/trellis-test/py-grpcio-<version>/. .ci/run calls this
# before `npm test`; the tests call it too (a no-op once built). A peer is
# skipped only where its toolchain (go, python3 with venv) is absent; a build
# that fails with the toolchain present is an error.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export HOME=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
cache=${TRELLIS_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/trellis-test}
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock -w 900 9 || { echo "test-peers: $cache/.lock busy for 15 min" >&2; exit 1; }
status=0

# ---- grpc-go ----
src=$root/test/interop/grpc-go
go=$(command -v go || true)
[ -z "$go" ] && [ -x /usr/local/go/bin/go ] && go=/usr/local/go/bin/go
ver=$(awk '$1 == "google.golang.org/grpc" { print $2; exit } $1 == "require" && $2 == "google.golang.org/grpc" { print $3; exit }' "$src/go.mod")
hash=$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-12)
dir=$cache/grpc-go-xds-$ver-$hash
if [ -x "$dir/grpc-go-xds" ]; then
  echo "grpc-go=$dir/grpc-go-xds"
elif [ -z "$go" ]; then
  echo "grpc-go-skip=Go is not installed (no go on PATH nor /usr/local/go/bin/go)"
else
  echo "test-peers: building grpc-go $ver xDS client into $dir" >&2
  mkdir -p "$dir"
  if (cd "$src" && "$go" build -mod=readonly -trimpath -o "$dir/grpc-go-xds.tmp" .) >&2; then
    mv "$dir/grpc-go-xds.tmp" "$dir/grpc-go-xds"
    echo "grpc-go=$dir/grpc-go-xds"
  else
    echo "test-peers: go build failed" >&2
    status=1
  fi
fi

# ---- gRPC C-core (Python grpcio) ----
req=$root/test/interop/grpc-python/requirements.txt
pyver=$(sed -n 's/^grpcio==//p' "$req")
venv=$cache/py-grpcio-$pyver
if [ -f "$venv/.complete" ]; then
  echo "grpc-python=$venv/bin/python"
elif ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "grpc-python-skip=python3 with venv and ensurepip is not installed"
else
  echo "test-peers: installing grpcio $pyver into $venv" >&2
  rm -rf "$venv"
  if python3 -m venv "$venv" >&2 && "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req" >&2 \
    && "$venv/bin/python" -c 'import grpc' >&2; then
    touch "$venv/.complete"
    echo "grpc-python=$venv/bin/python"
  else
    echo "test-peers: installing grpcio failed" >&2
    status=1
  fi
fi
exit $status
