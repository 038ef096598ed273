#!/usr/bin/env bash
# Build the deb and rpm into dist/:
#
#   packaging/build.sh [VERSION]      (default: the latest tag, else 0.0.0~git<commit>)
#
# nfpm (github.com/goreleaser/nfpm/v2) runs with `go run ...@v2.45.2`, so it
# never enters the main module's dependencies. Set GOARCH to cross-build.
# SW_BUILD_TAGS adds Go build tags to the packaged binary; only the nspawn
# test sets it (sockwarden_testhooks, its stall hook). Release builds leave
# it empty, so their binary carries no test hook.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
NFPM=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
# The version: the argument, else the latest tag (v1.2.3 -> 1.2.3), else
# 0.0.0~git<commit>. Debian and RPM versions must start with a digit.
version=${1:-$(git describe --tags --dirty 2>/dev/null | sed 's/^v//' || true)}
version=${version:-0.0.0~git$(git rev-parse --short HEAD 2>/dev/null || echo dev)}
case "$version" in [0-9]*) ;; *) echo "version $version must start with a digit" >&2; exit 2 ;; esac
arch=${GOARCH:-$(go env GOARCH)}
dist=$PWD/dist
rm -rf "$dist" && mkdir -p "$dist/completions"

# Two binaries from one tree (cmd/sockwarden/lean.go says why):
# /usr/bin/sockwarden, the lean build, runs every command that needs
# neither the etcd client nor Prometheus and execs
# /usr/libexec/sockwarden/sockwarden-full, the full build, for the agent,
# the fleet's commands and status.
ldflags="-s -w -X main.version=$version"
CGO_ENABLED=0 GOARCH=$arch go build -trimpath -tags "sockwarden_lean${SW_BUILD_TAGS:+,$SW_BUILD_TAGS}" -ldflags "$ldflags" -o "$dist/sockwarden" ./cmd/sockwarden
CGO_ENABLED=0 GOARCH=$arch go build -trimpath -tags "${SW_BUILD_TAGS:-}" -ldflags "$ldflags" -o "$dist/sockwarden-full" ./cmd/sockwarden
# Completions come from the binary itself (cobra), built for this host.
go build -ldflags "-X main.version=$version" -o "$dist/sockwarden-host" ./cmd/sockwarden
"$dist/sockwarden-host" completion bash > "$dist/completions/sockwarden.bash"
"$dist/sockwarden-host" completion zsh > "$dist/completions/_sockwarden"
"$dist/sockwarden-host" completion fish > "$dist/completions/sockwarden.fish"
# The man page: every command and flag from the command tree, then the
# hand-written sections; dated by the commit so that builds repeat.
"$dist/sockwarden-host" gen-man "$dist/sockwarden.8" --sections packaging/man/sockwarden.sections.8 \
  --date "$(git log -1 --format=%cs 2>/dev/null || date -u +%F)"
rm "$dist/sockwarden-host"
gzip -9n < "$dist/sockwarden.8" > "$dist/sockwarden.8.gz"

# The changelog (chglog format; nfpm writes the deb's changelog.Debian.gz
# and the rpm's %changelog from it): one entry for this build, dated by the
# commit so that two builds of one commit are the same. The rpm's template
# reads the version as semver, which has no '~'; -1 is nfpm.yaml's release.
when=$(git log -1 --format=%cI 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
cat > "$dist/changelog.yml" <<EOF
- semver: ${version//\~/-}-1
  date: $when
  packager: sockwarden maintainers <sockwarden@users.noreply.github.com>
  deb:
    urgency: medium
    distributions: [unstable]
  changes:
    - note: "Built from commit $commit (the project's git history lists changes)."
EOF

export SW_PKG_VERSION=$version SW_PKG_ARCH=$arch
for p in deb rpm; do
  go run "$NFPM" package --config packaging/nfpm.yaml --packager "$p" --target "$dist/"
done
ls -l "$dist"/*.deb "$dist"/*.rpm
