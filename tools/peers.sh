#!/usr/bin/env bash
# Test partners built from the Go module proxy (never used by the collection itself): build each named
# peer once, at its pinned version, into a cache outside the clone, and print the path of its binary.
#
#   tools/peers.sh NAME...          build what is missing, print one path per NAME
#   tools/peers.sh --list           print every recipe: name, package, version
#   tools/peers.sh --check NAME...  print the paths of the cached binaries, build nothing (exit 1 if one is missing)
#
# Cache: ${ARCHFLEET_CACHE:-/var/cache/archfleet}/peers/<name>-<version>-<recipe hash>/<binary>; the hash
# covers the recipe line and this script's build function, so changing either builds again and an
# unchanged recipe builds nothing. Go's own module and build caches live under the same root, so a
# second peer reuses the downloads of the first.
# Needs Go >= GO_MIN (the versions below need it); otherwise exits 3 with one sentence saying how to get it.
set -euo pipefail

# distribution v3.1.2's go.mod says go 1.26.0 (go-containerregistry v0.22.1's says 1.25.0).
GO_MIN=1.26
CACHE=${ARCHFLEET_CACHE:-/var/cache/archfleet}
HERE=$(cd "$(dirname "$0")" && pwd)
# cgo for the DIR>PACKAGE builds (build_pinned), as build_one has it.
CGO=${CGO_ENABLED:-0}

# name | Go package | version | binary | extra go build flags. The package is a module path (go install
# PKG@VERSION), a directory under tests/peers/ (a partner of the project's own), or, for modules that
# `go install` cannot build, DIR>PACKAGE: PACKAGE built in tests/peers/DIR, whose go.mod pins the module
# (BuildKit: go install refuses its exclude directives), or in module DIR@VERSION itself, as its main module
# (docker/cli: no go.mod, its vendor.mod pins its dependencies).
RECIPES='
crane|github.com/google/go-containerregistry/cmd/crane|v0.22.1|crane|
cosign|github.com/sigstore/cosign/v2/cmd/cosign|v2.6.1|cosign|
oras|oras.land/oras/cmd/oras|v1.3.6|oras|
regctl|github.com/regclient/regclient/cmd/regctl|v0.11.7|regctl|
distribution-3|github.com/distribution/distribution/v3/cmd/registry|v3.1.2|registry|
ggcr-registry|ggcr-registry|v0.22.1|ggcr-registry|
buildkitd|buildkit>github.com/moby/buildkit/cmd/buildkitd|v0.34.2|buildkitd|-ldflags=-X=github.com/moby/buildkit/version.Version=v0.34.2
buildctl|buildkit>github.com/moby/buildkit/cmd/buildctl|v0.34.2|buildctl|-ldflags=-X=github.com/moby/buildkit/version.Version=v0.34.2
buildx|github.com/docker/buildx/cmd/buildx|v0.38.2|buildx|-ldflags=-X=github.com/docker/buildx/version.Version=v0.38.2
docker|github.com/docker/cli>./cmd/docker|v29.8.2+incompatible|docker|-ldflags=-X=github.com/docker/cli/cli/version.Version=29.8.2
'

recipe() {
  local line
  line=$(printf '%s\n' "$RECIPES" | awk -F'|' -v name="$1" '$1 == name')
  if [ -z "$line" ]; then
    echo "peers.sh: no recipe named '$1'; known: $(printf '%s\n' "$RECIPES" | cut -d'|' -f1 | xargs)" >&2
    exit 2
  fi
  printf '%s\n' "$line"
}

# The cache directory of a recipe line.
dir_of() {
  local line=$1 name pkg version hash
  IFS='|' read -r name pkg version _ _ <<<"$line"
  # A DIR>PACKAGE recipe: its directory and its builder count too (the others' hashes stay as they were).
  pkg=${pkg%%>*}
  hash=$( { printf '%s\n' "$line"; declare -f build_one; [[ $line == *'>'* ]] && declare -f build_pinned
            [ -d "$HERE/../tests/peers/$pkg" ] &&
            (cd "$HERE/../tests/peers/$pkg" && find . -type f -print0 | sort -z | xargs -0 cat); true; } |
          sha256sum | cut -c1-12)
  printf '%s/peers/%s-%s-%s\n' "$CACHE" "$name" "$version" "$hash"
}

check_go() {
  local have
  if ! have=$(go env GOVERSION 2>/dev/null); then
    echo "peers.sh: Go is not installed; the test partners need Go $GO_MIN or later (https://go.dev/doc/install; Debian 12 ships 1.19)." >&2
    exit 3
  fi
  have=${have#go}
  if [ "$(printf '%s\n%s\n' "$GO_MIN" "$have" | sort -V | head -1)" != "$GO_MIN" ]; then
    echo "peers.sh: Go $have is too old; the test partners need Go $GO_MIN or later (https://go.dev/doc/install)." >&2
    exit 3
  fi
}

# Build one recipe line into its cache directory. Called in an `if`, where bash ignores `set -e`, so
# every failure is checked here: a failed build leaves nothing in the cache and returns 1.
build_one() {
  local line=$1 out=$2 name pkg version binary flags tmp
  IFS='|' read -r name pkg version binary flags <<<"$line"
  read -r -a flag_args <<<"$flags"
  tmp=$(mktemp -d "$CACHE/peers/.build-$name.XXXXXX") || return 1
  if ! (
    export GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" GOFLAGS="-trimpath -mod=mod" CGO_ENABLED=${CGO_ENABLED:-0}
    if [ -d "$HERE/../tests/peers/$pkg" ]; then
      # A partner of the project's own (a small main around a library): built from its directory.
      cd "$HERE/../tests/peers/$pkg" && go build "${flag_args[@]}" -o "$tmp/$binary" .
    else
      GOBIN="$tmp" go install "${flag_args[@]}" "$pkg@$version"
    fi
  ) || [ ! -x "$tmp/$binary" ]; then
    rm -rf "$tmp"
    echo "peers.sh: building $name $version failed (see go's output above)" >&2
    return 1
  fi
  mv -T "$tmp" "$out"
}

# Build a DIR>PACKAGE recipe line: PACKAGE, in tests/peers/DIR (its go.mod and go.sum pin the module) or,
# where DIR is a module path, in that module as downloaded at the recipe's version (the module cache is
# read-only: the build writes nothing there). Same contract as build_one.
build_pinned() {
  local line=$1 out=$2 name pkg version binary flags tmp
  IFS='|' read -r name pkg version binary flags <<<"$line"
  read -r -a flag_args <<<"$flags"
  local goenv=(GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" GOFLAGS="-trimpath -mod=readonly" CGO_ENABLED="$CGO")
  tmp=$(mktemp -d "$CACHE/peers/.build-$name.XXXXXX") || return 1
  if ! (
    dir=$HERE/../tests/peers/${pkg%%>*}
    if [ ! -d "$dir" ]; then
      # A copy of the module, its vendor.mod and vendor.sum as go.mod and go.sum where it has no go.mod
      # (as docker/cli's scripts/with-go-mod.sh does), removed after the build.
      src=$(cd "$tmp" && env "${goenv[@]}" GOFLAGS=-mod=mod go mod download -json "${pkg%%>*}@$version" |
            sed -n 's/^\t"Dir": "\(.*\)",$/\1/p') && [ -n "$src" ] || exit 1
      dir=$tmp/src
      cp -r "$src" "$dir" && chmod -R u+w "$dir" || exit 1
      if [ ! -e "$dir/go.mod" ]; then cp "$dir/vendor.mod" "$dir/go.mod" && cp "$dir/vendor.sum" "$dir/go.sum" || exit 1; fi
    fi
    cd "$dir" && env "${goenv[@]}" go build "${flag_args[@]}" -o "$tmp/$binary" "${pkg#*>}" && rm -rf "$tmp/src"
  ) || [ ! -x "$tmp/$binary" ]; then
    rm -rf "$tmp"
    echo "peers.sh: building $name $version failed (see go's output above)" >&2
    return 1
  fi
  mv -T "$tmp" "$out"
}

case "${1:-}" in
  --list) printf '%s\n' "$RECIPES" | grep -v '^$' | cut -d'|' -f1-3 | tr '|' ' '; exit 0 ;;
  --check) shift; check=1 ;;
  '') echo "usage: tools/peers.sh [--check] NAME... | --list" >&2; exit 2 ;;
  *) check=0 ;;
esac

mkdir -p "$CACHE/peers"
for name in "$@"; do
  line=$(recipe "$name")
  out=$(dir_of "$line")
  binary=$(cut -d'|' -f4 <<<"$line")
  if [ ! -x "$out/$binary" ]; then
    [ "$check" = 1 ] && { echo "peers.sh: $name is not built ($out)" >&2; exit 1; }
    check_go
    echo "peers.sh: building $name $(cut -d'|' -f3 <<<"$line") into $out" >&2
    # One build per peer at a time, across processes.
    exec 9>"$CACHE/peers/.lock-$name"
    flock 9
    builder=build_one
    [[ $(cut -d'|' -f2 <<<"$line") == *'>'* ]] && builder=build_pinned
    if [ ! -x "$out/$binary" ]; then $builder "$line" "$out" >&2 || exit 1; fi
    exec 9>&-
  fi
  printf '%s/%s\n' "$out" "$binary"
done
