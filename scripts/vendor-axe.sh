#!/usr/bin/env bash
# Re-vendor axe-core (MPL-2.0; the accessibility checks of tests/test_accessibility.py) from
# the npm registry. A test tool only: it is never served by Mailroom.
set -euo pipefail
version=${1:-4.14.1}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
(cd "$work" && npm pack "axe-core@$version" -q >/dev/null && tar xzf "axe-core-$version.tgz")
target="$root/tests/vendor/axe-core-$version"
rm -rf "$root"/tests/vendor/axe-core-*
mkdir -p "$target"
cp "$work/package/axe.min.js" "$work/package/LICENSE" "$target/"
rm -rf "$work"
echo "vendored axe-core $version into $target"
