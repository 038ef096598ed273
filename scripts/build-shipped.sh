#!/usr/bin/env bash
# Build /usr/bin/sockwarden to OUT as packaging/build.sh builds it, for the
# benchmarks: static (no cgo), stripped, -trimpath, and the lean build
# (-tags sockwarden_lean: no etcd client, no Prometheus;
# docs/ARCHITECTURE.md). A plain go build links libc and ld.so in and
# carries a symbol table, and its start is not the one users run.
#
#   scripts/build-shipped.sh OUT
#
# Build a before binary (OLD) with the same command in that tree:
#   CGO_ENABLED=0 go build -trimpath -tags sockwarden_lean -ldflags "-s -w" -o OLD ./cmd/sockwarden
# In a tree from before the split (2026-12-06) the tag leaves nothing out.
set -euo pipefail
[ $# = 1 ] || { echo "usage: $0 OUT" >&2; exit 2; }
out=$(realpath -m "$1")
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
CGO_ENABLED=0 go build -trimpath -tags sockwarden_lean -ldflags "-s -w" -o "$out" ./cmd/sockwarden
