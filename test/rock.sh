#!/usr/bin/env bash
# test/rock.sh: corun installs and works without any network:
# `luarocks make` from the checkout, then `make dist`'s tarball (what
# the rockspec's source.url names) built with luarocks build and its source
# rock installed with luarocks install, each into a temporary tree;
# plain lua5.4 requires corun from that tree and its corun runner runs; and
# `cmake --install` (what `make install` runs) into a temporary prefix.
set -eu
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
LR="luarocks --lua-version 5.4"

check() {  # tree
  local tree=$1 got
  got=$(eval "$($LR --tree "$tree" path)" && lua5.4 -e '
    local corun = require "corun"
    print(corun.run(function() corun.sleep(0.01) return "module ok" end))')
  [ "$got" = "module ok" ] || { echo "require corun from $tree: '$got'"; return 1; }
  got=$("$tree/bin/corun" -e 'local c = require "corun"
    c.spawn(function() c.sleep(0.01) print("runner ok") end)')
  [ "$got" = "runner ok" ] || { echo "runner in $tree: '$got'"; return 1; }
}

# 1. luarocks make, from the checkout
$LR make --tree "$tmp/make-tree" corun-scm-1.rockspec >"$tmp/make.log" 2>&1 ||
  { cat "$tmp/make.log"; exit 1; }
check "$tmp/make-tree"

# 2. make dist: the source tarball the rockspec names and the source rock;
#    luarocks build of the rockspec as it is, beside its tarball, and
#    luarocks install of the source rock, each into a tree of its own
make --no-print-directory dist DIST_DIR="$tmp" >/dev/null
cp corun-scm-1.rockspec "$tmp/"
(cd "$tmp" && $LR --tree "$tmp/build-tree" build corun-scm-1.rockspec >build.log 2>&1) ||
  { cat "$tmp/build.log"; exit 1; }
check "$tmp/build-tree"
(cd / && $LR --tree "$tmp/tree" install "$tmp/corun-scm-1.src.rock" >"$tmp/install.log" 2>&1) ||
  { cat "$tmp/install.log"; exit 1; }
check "$tmp/tree"
# 3. make install's CMake install, into a prefix of our own
cmake --install build --prefix "$tmp/prefix" >/dev/null
got=$(LUA_PATH="$tmp/prefix/share/lua/5.4/?.lua;$tmp/prefix/share/lua/5.4/?/init.lua" \
      LUA_CPATH="$tmp/prefix/lib/lua/5.4/?.so" lua5.4 -e '
  local corun = require "corun"
  print(corun.run(function() corun.sleep(0.01) return "prefix ok" end))')
[ "$got" = "prefix ok" ] || { echo "cmake --install: '$got'"; exit 1; }
got=$("$tmp/prefix/bin/corun" -e 'print(package.searchpath("corun", package.path))')
case "$got" in "$tmp/prefix/"*) ;; *) echo "installed runner loads $got"; exit 1;; esac
echo "rock: luarocks make, luarocks build, luarocks install and cmake --install all work"
