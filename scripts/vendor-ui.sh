#!/usr/bin/env bash
# Refreshes the web client's vendored libraries (bins/api-gateway/ui/vendor/)
# from the npm registry: `npm pack` of pinned versions into a temp dir, then
# copies only the built files the client loads plus each package's licence.
# The result is committed, so building or running confab never needs Node;
# run this only to upgrade a library (edit the versions below), then commit.
#
#   marked                  Markdown -> HTML (lib/marked.esm.js, an ES module)
#   dompurify               HTML sanitiser (dist/purify.min.js; sets globalThis.DOMPurify)
#   @highlightjs/cdn-assets code highlighting (es/core.min.js + a few languages),
#                           loaded lazily when an answer contains code
set -euo pipefail
cd "$(dirname "$0")/.."

MARKED=18.3.0
DOMPURIFY=3.5.0
HLJS=11.12.0
LANGS=(bash c cpp css diff go java javascript json markdown python rust shell sql typescript xml yaml)

command -v npm >/dev/null || { echo "vendor-ui: npm not found (needed only to refresh the vendored files)" >&2; exit 1; }
out=bins/api-gateway/ui/vendor
tmp=$(mktemp -d /tmp/confab-vendor.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "marked@$MARKED" "dompurify@$DOMPURIFY" "@highlightjs/cdn-assets@$HLJS" >/dev/null)
for t in "$tmp"/*.tgz; do
  d=${t%.tgz}; mkdir -p "$d"; tar xzf "$t" -C "$d"
done
m=$tmp/marked-$MARKED/package d=$tmp/dompurify-$DOMPURIFY/package h=$tmp/highlightjs-cdn-assets-$HLJS/package

rm -rf "$out"; mkdir -p "$out/hljs"
# Source-map comments are dropped: the maps are not shipped.
strip_map() { sed '/^\/\/# sourceMappingURL=/d' "$1" > "$2"; }
strip_map "$m/lib/marked.esm.js" "$out/marked.esm.js"
cp "$m/LICENSE" "$out/LICENSE.marked"
strip_map "$d/dist/purify.min.js" "$out/purify.min.js"
cp "$d/LICENSE" "$out/LICENSE.dompurify"
strip_map "$h/es/core.min.js" "$out/hljs/core.min.js"
for l in "${LANGS[@]}"; do
  strip_map "$h/es/languages/$l.min.js" "$out/hljs/$l.min.js"
done
cp "$h/LICENSE" "$out/LICENSE.highlightjs"
cat > "$out/VERSIONS" <<EOT
marked $MARKED (MIT)
dompurify $DOMPURIFY (Apache-2.0 OR MPL-2.0)
@highlightjs/cdn-assets $HLJS (BSD-3-Clause): core + ${LANGS[*]}
EOT
echo "vendor-ui: wrote $out:"
ls -la "$out" "$out/hljs" | sed 's/^/  /'
