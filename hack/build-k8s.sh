#!/usr/bin/env bash
# Build kube-apiserver and etcd from the Go module proxy into .tools/k8s (cached).
# k8s.io/kubernetes pins its staging modules (k8s.io/api, ...) at v0.0.0 with
# replace lines into ./staging, which a module consumer cannot see; a wrapper
# module maps each of them to its published v0.X.Y instead.
set -euo pipefail
K8S_VERSION="${K8S_VERSION:-v1.34.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.5}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/.tools/k8s/$K8S_VERSION"
mkdir -p "$OUT"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local
export GOMAXPROCS="${GOMAXPROCS:-2}"

if [[ ! -x "$OUT/etcd" ]]; then
  echo "[k8s-e2e] building etcd $ETCD_VERSION" >&2
  # etcd's server module has replace lines too: build it from a wrapper module.
  work="$ROOT/.tools/k8s/build-etcd-$ETCD_VERSION"
  mkdir -p "$work"
  (
    cd "$work"
    printf 'module synod.local/etcdbuild\n\ngo 1.24\n\nrequire go.etcd.io/etcd/server/v3 %s\n' \
      "$ETCD_VERSION" > go.mod
    printf 'package etcdbuild\n\nimport _ "go.etcd.io/etcd/server/v3/etcdmain"\n' > tools.go
    go mod tidy >/dev/null
    go build -trimpath -o "$OUT/etcd" go.etcd.io/etcd/server/v3
  )
fi

if [[ ! -x "$OUT/kube-apiserver" ]]; then
  echo "[k8s-e2e] building kube-apiserver $K8S_VERSION (minutes on 2 cores)" >&2
  staging_version="v0.${K8S_VERSION#v1.}"
  work="$ROOT/.tools/k8s/build-$K8S_VERSION"
  mkdir -p "$work"
  cd "$work"
  cat > go.mod <<MOD
module synod.local/k8sbuild

go 1.24

require k8s.io/kubernetes $K8S_VERSION
MOD
  printf 'package k8sbuild\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver/app"\n' > tools.go
  # The staging modules kubernetes requires at v0.0.0, from its own go.mod.
  go mod download -json "k8s.io/kubernetes@$K8S_VERSION" >/dev/null
  gomod="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.mod"
  for module in $(awk '$1 ~ /^k8s.io\// && $2 == "v0.0.0" {print $1}' "$gomod" | sort -u); do
    echo "replace $module => $module $staging_version" >> go.mod
  done
  go mod tidy >/dev/null
  flags="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION"
  flags+=" -X k8s.io/component-base/version.gitMajor=1"
  flags+=" -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2)"
  flags+=" -X k8s.io/component-base/version.gitTreeState=clean"
  flags+=" -X k8s.io/component-base/version/verflag.programName=kube-apiserver"
  go build -trimpath -ldflags "$flags" -o "$OUT/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
fi
echo "$OUT"
