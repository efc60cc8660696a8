#!/usr/bin/env bash
# Builds the local control plane's servers (kube-apiserver, etcd, MinIO, helm) from their Go
# modules into a cache outside the repository. Idempotent: a binary already in the cache, in
# $MODELFLEET_TOOLS or on PATH is never rebuilt. Prints the directory holding the binaries last.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.36.3}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
HELM_VERSION=${HELM_VERSION:-v3.22.0}
MINIO_VERSION=${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}

version_key="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_helm-${HELM_VERSION}_minio-${MINIO_VERSION:0:26}"
cache_root=${MODELFLEET_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelfleet/tools}
bin_dir=${MODELFLEET_TOOLS:-$cache_root/$version_key/bin}
mkdir -p "$bin_dir"

export CGO_ENABLED=0 GOFLAGS="-trimpath" GOTOOLCHAIN=local
ldflags="-s -w"

log() { printf '[tools] %s\n' "$*" >&2; }

have() {
  local name=$1
  if [[ -x "$bin_dir/$name" ]]; then return 0; fi
  local found
  if found=$(command -v "$name" 2>/dev/null); then
    ln -sf "$found" "$bin_dir/$name"
    log "$name: using $found from PATH"
    return 0
  fi
  return 1
}

timed() {
  local name=$1; shift
  local start=$SECONDS
  log "$name: building"
  "$@"
  log "$name: built in $((SECONDS - start))s"
}

# Modules whose go.mod carries replace directives (kubernetes, etcd) cannot be built with
# `go install pkg@version`; building them from a throwaway main module works.
build_in_scratch_module() {
  local pkg=$1 version=$2 out=$3; shift 3
  local work; work=$(mktemp -d)
  (
    cd "$work"
    go mod init modelfleet.local/tools >/dev/null 2>&1
    for replacement in "$@"; do go mod edit -replace "$replacement"; done
    go get "$pkg@$version" >/dev/null
    go build -ldflags "$ldflags" -o "$bin_dir/$out" "$pkg"
  )
  rm -rf "$work"
}

build_kubernetes_command() {
  # k8s.io/kubernetes points its staging modules at local paths: pin each to its v0.x release.
  local staging_version="v0.${K8S_VERSION#v1.}"
  local gomod; gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
  local replacements=()
  while read -r mod; do replacements+=("$mod=$mod@$staging_version"); done \
    < <(grep -oE '^\s+k8s\.io/[a-z0-9-]+ => \./staging' "$gomod" | awk '{print $1}')
  build_in_scratch_module "k8s.io/kubernetes/cmd/$1" "$K8S_VERSION" "$1" "${replacements[@]}"
}

go_install() {
  local pkg=$1 name=$2
  GOBIN="$bin_dir" go install -ldflags "$ldflags" "$pkg"
  [[ -x "$bin_dir/$name" ]] || { log "$name: go install did not produce $bin_dir/$name"; exit 1; }
}

total_start=$SECONDS
have etcd || timed etcd build_in_scratch_module go.etcd.io/etcd/server/v3 "$ETCD_VERSION" etcd
have kube-apiserver || timed kube-apiserver build_kubernetes_command kube-apiserver
# Only its garbage-collector and namespace controllers run: owner references and namespace
# deletion then behave as in a real cluster, while the dev job runner stands in for kubelets.
have kube-controller-manager || timed kube-controller-manager build_kubernetes_command kube-controller-manager
have helm || timed helm go_install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" helm
have minio || timed minio go_install "github.com/minio/minio@$MINIO_VERSION" minio
log "all tools ready in $((SECONDS - total_start))s"
echo "$bin_dir"
