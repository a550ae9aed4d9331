#!/usr/bin/env bash
# actionlint (workflow linter) built from Go modules, cached per version.
set -euo pipefail
version=v1.7.7
dir="${XDG_CACHE_HOME:-$HOME/.cache}/tms-stack/bin/actionlint-$version"
if [ -x "$dir/actionlint" ]; then echo "actionlint $version: cached in $dir"; exit 0; fi
echo "building actionlint $version from Go modules (about a minute)..."
mkdir -p "$dir"
GOBIN="$dir" GOFLAGS=-mod=mod go install "github.com/rhysd/actionlint/cmd/actionlint@$version"
echo "actionlint $version: built into $dir"
