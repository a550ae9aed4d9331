#!/usr/bin/env bash
# versitygw: a real S3 gateway (signature-checked, posix backend) built from Go modules, cached.
set -euo pipefail
version=v1.0.14
dir="${XDG_CACHE_HOME:-$HOME/.cache}/tms-stack/bin/versitygw-$version"
if [ -x "$dir/versitygw" ]; then echo "versitygw $version: cached in $dir"; exit 0; fi
echo "building versitygw $version from Go modules (a few minutes on 2 cores)..."
mkdir -p "$dir"
GOBIN="$dir" GOFLAGS=-mod=mod go install -v "github.com/versity/versitygw/cmd/versitygw@$version" 2>&1 \
  | awk '{ n++ } n % 25 == 0 { print "  ... " n " packages compiled"; fflush() }'
echo "versitygw $version: built into $dir"
