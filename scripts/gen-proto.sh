#!/usr/bin/env bash
# Regenerate the Go code for api/rewardpool/v1/*.proto.
#
# Installs pinned code generators into ./.tools/bin with `go install` (skipped
# when the binary there already reports the pinned version), then runs
# `buf generate` with local plugins only: no protoc, no remote plugins, no BSR.
# Only the Go module proxy is needed.
set -euo pipefail

BUF_VERSION=v1.75.0
PROTOC_GEN_GO_VERSION=v1.36.12       # google.golang.org/protobuf (same as the runtime in go.mod)
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2    # google.golang.org/grpc/cmd/protoc-gen-go-grpc

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TOOLS_BIN="$ROOT/.tools/bin"
mkdir -p "$TOOLS_BIN"

log() { printf 'gen-proto: %s\n' "$*"; }

# install NAME MODULE_PATH PACKAGE_PATH VERSION
install_tool() {
  local name=$1 mod=$2 pkg=$3 ver=$4 bin="$TOOLS_BIN/$1" have=""
  if [[ -x "$bin" ]]; then
    # `go version -m` prints "mod <module> <version> <sum>" for the main module.
    have=$(go version -m "$bin" 2>/dev/null | awk -v m="$mod" '$1=="mod" && $2==m {print $3}')
  fi
  if [[ "$have" == "$ver" ]]; then
    log "$name $ver already installed"
    return
  fi
  log "installing $name $ver${have:+ (found $have)} ..."
  local t0=$SECONDS
  GOBIN="$TOOLS_BIN" go install "$pkg@$ver"
  log "installed $name $ver in $((SECONDS - t0))s"
}

install_tool protoc-gen-go google.golang.org/protobuf \
  google.golang.org/protobuf/cmd/protoc-gen-go "$PROTOC_GEN_GO_VERSION"
install_tool protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc \
  google.golang.org/grpc/cmd/protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION"
install_tool buf github.com/bufbuild/buf \
  github.com/bufbuild/buf/cmd/buf "$BUF_VERSION"

# buf.gen.yaml names the plugins by bare name; put ours first on PATH.
export PATH="$TOOLS_BIN:$PATH"

log "buf lint ..."
buf lint
log "buf generate ..."
buf generate
log "gofmt check ..."
unformatted=$(gofmt -l api/ || true)
if [[ -n "$unformatted" ]]; then
  log "not gofmt-clean: $unformatted"; exit 1
fi
log "done:"
ls -1 api/rewardpool/v1/*.pb.go | sed 's/^/gen-proto:   /'
