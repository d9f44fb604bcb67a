#!/usr/bin/env bash
# Browser tests of the web UI: builds pharos and pharos-write from this
# repository, installs the npm packages (playwright-core, and the UI's
# libraries so the vendored copies can be checked), and runs the
# playwright tests against Debian's chromium. Screenshots land in
# web/ui/artifacts (git-ignored).
#
# Needs: go, node + npm, and chromium (apt-get install -y chromium).
set -euo pipefail
cd "$(dirname "$0")"
ui="$(pwd)"
root="$(cd ../.. && pwd)"

bin="$(mktemp -d)"
trap 'rm -rf "$bin"' EXIT
(cd "$root" && CGO_ENABLED=0 go build -o "$bin/" ./cmd/pharos ./cmd/pharos-write)

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
	npm ci --no-audit --no-fund
fi
# The embedded vendor files must be what package.json pins.
node vendor.mjs >/dev/null
if ! git -C "$root" diff --quiet -- web/static/vendor; then
	echo "web/static/vendor is stale: commit the output of 'node web/ui/vendor.mjs'" >&2
	git -C "$root" diff --stat -- web/static/vendor >&2
	exit 1
fi

mkdir -p artifacts
export PHAROS_BIN="$bin/pharos" PHAROS_WRITE_BIN="$bin/pharos-write"
node --test --test-concurrency=1 --test-timeout=300000 tests/*.test.mjs
