#!/usr/bin/env bash
# Re-vendor uPlot (MIT; the admin's Delivery charts) from the npm registry into static files.
# Nothing is loaded from a CDN at run time.
set -euo pipefail
version=${1:-1.6.32}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
(cd "$work" && npm pack "uplot@$version" -q >/dev/null && tar xzf "uplot-$version.tgz")
target="$root/emails/static/emails/vendor/uplot-$version"
rm -rf "$target"
mkdir -p "$target"
cp "$work/package/dist/uPlot.iife.min.js" "$work/package/dist/uPlot.min.css" "$work/package/LICENSE" "$target/"
rm -rf "$work"
echo "vendored uPlot $version into $target"
