#!/bin/sh
# The container image's build steps, in one place: the Dockerfile's build stage runs this script, and so
# does test/e2e/container-recipe.test.ts on a clean copy of the tree (there is no container engine in CI),
# so the two cannot drift apart.
#
#   scripts/container-build.sh <tree> <out>
#
# <tree>: the sources (package.json, package-lock.json, tsconfig*.json, bin/, src/). <out>: what the
# runtime stage copies to /app: package.json, bin/, dist/ and production node_modules with the SQLite
# driver compiled for this Node. Extra npm flags (the test passes --offline) come in WA_NPM_FLAGS.
set -eu
tree=$(cd "$1" && pwd)
mkdir -p "$2"
out=$(cd "$2" && pwd)
npm_flags=${WA_NPM_FLAGS:-}

# node-gyp compiles better-sqlite3 (no prebuilt binary for every Node): point it at this Node's own
# headers when they are installed (the node image and Debian's nodejs carry them) instead of downloading.
node_prefix=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
if [ -f "$node_prefix/include/node/node_api.h" ]; then
  npm_config_nodedir=$node_prefix
  export npm_config_nodedir
fi

cd "$tree"
# Everything, dev dependencies included: TypeScript builds dist/. --ignore-scripts skips the driver's
# compile here (only the runtime tree needs it) and the root `prepare`; the build runs explicitly.
# shellcheck disable=SC2086
npm ci --ignore-scripts --no-audit --no-fund $npm_flags
npm run build

cp package.json package-lock.json "$out/"
rm -rf "$out/bin" "$out/dist"
cp -R bin dist "$out/"
cd "$out"
# Production dependencies only. `npm ci --omit=dev` would still run the root `prepare` (tsc, which is a
# dev dependency and absent here): --ignore-scripts, then compile the one native module explicitly.
# shellcheck disable=SC2086
npm ci --omit=dev --ignore-scripts --no-audit --no-fund $npm_flags
addon=node_modules/better-sqlite3/build/Release/better_sqlite3.node
if [ -n "${WA_SQLITE3_ADDON:-}" ]; then
  # The test's shortcut only (a compile takes over a minute on two cores): the very addon `npm ci` just
  # compiled for the same better-sqlite3 version and the same Node. The image always compiles.
  mkdir -p "$(dirname "$addon")"
  cp "$WA_SQLITE3_ADDON" "$addon"
else
  # shellcheck disable=SC2086
  npm rebuild better-sqlite3 $npm_flags
  rm -rf node_modules/better-sqlite3/build/Release/obj node_modules/better-sqlite3/build/Release/obj.target
fi
rm package-lock.json
# The image is no good if the driver does not load: fail the build here, not at the first start.
node -e "const Database = require('better-sqlite3'); new Database(':memory:').prepare('select 1').get();"
echo "container-build: $out ready"
