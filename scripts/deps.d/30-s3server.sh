#!/usr/bin/env bash
# versitygw: a real S3 gateway (signature-checked, posix backend) built from Go modules, cached.
# Used by tests/support/s3server.py (the `s3_server` fixture).
set -euo pipefail
version=v1.0.14
cache="${XDG_CACHE_HOME:-$HOME/.cache}/tms-stack"
dir="$cache/bin/versitygw-$version"
if [ -x "$dir/versitygw" ]; then echo "versitygw $version: cached in $dir"; exit 0; fi

# versitygw needs Go >= 1.23 (its go.mod); Go >= 1.21 fetches a newer toolchain by itself. Where there
# is no Go or an older one (Debian 12's golang-go is 1.19), fetch the Go toolchain as the Go command
# itself would: the golang.org/toolchain module from the Go module proxy.
go_ok() {
  command -v go >/dev/null 2>&1 || return 1
  local v; v="$(go env GOVERSION 2>/dev/null | sed 's/^go//')"
  [ -n "$v" ] && [ "$(printf '%s\n1.21\n' "$v" | sort -V | head -1)" = "1.21" ]
}
if ! go_ok; then
  gov=1.24.1
  case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64|arm64) arch=arm64 ;; *) arch="$(uname -m)" ;; esac
  goroot="$cache/go-$gov"
  if [ ! -x "$goroot/bin/go" ]; then
    # The proxy's address from Go's own settings ($GOPROXY, else an older go command's `go env GOPROXY`):
    # its first entry that is a URL.
    proxies="${GOPROXY:-}"
    if [ -z "$proxies" ] && command -v go >/dev/null 2>&1; then proxies="$(go env GOPROXY 2>/dev/null || true)"; fi
    base="$(printf '%s\n' "$proxies" | tr ',|' '\n\n' | grep -E '^https?://' | head -1 || true)"
    if [ -z "$base" ]; then
      echo "error: no Go >= 1.21 here and no Go module proxy configured: install Go >= 1.21 or set GOPROXY" >&2
      exit 2
    fi
    url="${base%/}/golang.org/toolchain/@v/v0.0.1-go$gov.linux-$arch.zip"
    echo "no Go >= 1.21 here: fetching the Go $gov toolchain from the Go module proxy ($url)..."
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    curl -fL --retry 3 --progress-bar -o "$tmp/go.zip" "$url"
    python3 - "$tmp/go.zip" "$tmp/x" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
    mkdir -p "$cache"
    rm -rf "$goroot"
    mv "$tmp/x/golang.org/toolchain@v0.0.1-go$gov.linux-$arch" "$goroot"
    # Module zips carry no file modes; the go command marks these executable when it unpacks one.
    chmod -R +x "$goroot/bin" "$goroot/pkg/tool"
  fi
  export PATH="$goroot/bin:$PATH" GOTOOLCHAIN=local
  echo "using $(go version)"
fi

echo "building versitygw $version from Go modules (a few minutes on 2 cores)..."
mkdir -p "$dir"
log="$dir/build.log"
if ! GOBIN="$dir" GOFLAGS=-mod=mod go install -v "github.com/versity/versitygw/cmd/versitygw@$version" 2>&1 \
    | tee "$log" | awk '{ n++ } n % 25 == 0 { print "  ... " n " packages compiled"; fflush() }' \
    || [ ! -x "$dir/versitygw" ]; then
  echo "versitygw $version: build failed; last lines of $log:" >&2
  tail -n 30 "$log" >&2
  exit 1
fi
echo "versitygw $version: built into $dir"
