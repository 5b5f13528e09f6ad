#!/usr/bin/env bash
# Re-vendor the front-end libraries the pages load (no build step at run time): install the versions pinned
# in package-lock.json and copy each package's browser build and licence into simulator/static/simulator/vendor/.
# Upgrade: bump the version in package.json, `npm install --prefix tools/vendor`, then run this script and
# commit the copies. node_modules is never committed.
#
# Two texts are not in the npm packages and are kept in the vendor directory by hand (this script leaves them
# alone): lightweight-charts.NOTICE (the NOTICE of github.com/tradingview/lightweight-charts, whose
# attribution the pages show, see simulator/templates/simulator/_chart_attribution.html) and
# fancy-canvas.LICENSE (MIT; fancy-canvas is bundled inside the lightweight-charts standalone build).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dest="$(cd "$here/../.." && pwd)/simulator/static/simulator/vendor"
modules="$here/node_modules"

npm ci --prefix "$here" --no-audit --no-fund --loglevel=error
mkdir -p "$dest"

# copy PACKAGE SOURCE DEST_NAME: one file out of node_modules/PACKAGE.
copy() { install -m 0644 "$modules/$1/$2" "$dest/$3"; }

copy htmx.org dist/htmx.min.js htmx.min.js
copy htmx.org LICENSE htmx.LICENSE
copy lightweight-charts dist/lightweight-charts.standalone.production.js lightweight-charts.standalone.production.js
copy lightweight-charts LICENSE lightweight-charts.LICENSE

# A package that starts shipping a NOTICE replaces the hand-kept copy.
for package in htmx.org lightweight-charts; do
  if [[ -f "$modules/$package/NOTICE" ]]; then copy "$package" NOTICE "${package%.org}.NOTICE"; fi
done
for kept in lightweight-charts.NOTICE fancy-canvas.LICENSE; do
  [[ -f "$dest/$kept" ]] || { echo "missing $dest/$kept (see the comment at the top of $0)" >&2; exit 1; }
done

# The versions the copies came from, for reviewers and NOTICE.
node -e '
  const lock = require(process.argv[1]).packages;
  for (const name of ["htmx.org", "lightweight-charts", "fancy-canvas"]) {
    const entry = lock["node_modules/" + name];
    console.log(`${name} ${entry.version} ${entry.license} ${entry.integrity}`);
  }
' "$here/package-lock.json" > "$dest/VERSIONS"
echo "vendored into $dest:"
cat "$dest/VERSIONS"
