#!/usr/bin/env bash
# Re-vendor CodeMirror 5 (MIT) from the npm registry into static files. Nothing is loaded from
# a CDN at run time; the admin's editor uses only these files.
set -euo pipefail
version=${1:-5.65.21}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
(cd "$work" && npm pack "codemirror@$version" -q >/dev/null && tar xzf "codemirror-$version.tgz")
target="$root/emails/static/emails/vendor/codemirror-$version"
rm -rf "$target"
mkdir -p "$target/lib" "$target/addon/mode"
cp "$work/package/lib/codemirror.js" "$work/package/lib/codemirror.css" "$target/lib/"
for mode in xml javascript css htmlmixed django; do
    mkdir -p "$target/mode/$mode"
    cp "$work/package/mode/$mode/$mode.js" "$target/mode/$mode/"
done
cp "$work/package/addon/mode/overlay.js" "$target/addon/mode/"
cp "$work/package/LICENSE" "$target/"
rm -rf "$work"
echo "vendored CodeMirror $version into $target"
