#!/usr/bin/env bash
# test/run.sh: every test of corun, as `make test` runs it (after building
# build/ and build-asan/). Stages: C unit tests, the busted specs (a
# redis-server and a Redis Cluster started for them), the queue specs on
# the cluster, the examples with their output checked, the code blocks of
# docs/ (their `-->` lines checked, test/doc_examples.lua), the Redis
# queue's chaos test (test/redis_chaos.lua), the rock (luarocks make / build /
# install, offline), the specs again under ASan+UBSan, the thread and
# channel specs under ThreadSanitizer, the codec fuzzer, and valgrind on
# the runner. The specs run under build*/bin/corun-busted (busted under
# lua5.4 with that build's corun on the path). Prints busted's summaries
# and ends with "N passed, M failed".
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
PASS=0
FAIL=0
FAILED=()
ok()  { PASS=$((PASS + 1)); echo "ok - $1"; }
bad() { FAIL=$((FAIL + 1)); FAILED+=("$1"); echo "FAILED - $1"; }
stage() { echo; echo "== $1"; }

# Run busted ($@) and add its counts; a run without a summary is a failure.
# A sanitizer report in the output (a leak is reported when the busted
# process exits, after its summary) or a non-zero exit with no failure
# counted is one more failure.
busted_stage() {
  local label=$1 out s f e rc preload=${LD_PRELOAD:-}
  shift
  unset LD_PRELOAD  # for busted only: not for tee, sed and grep here
  out=$(mktemp)
  if [ -n "$preload" ]; then LD_PRELOAD=$preload "$@" 2>&1 | tee "$out"
  else "$@" 2>&1 | tee "$out"; fi
  rc=${PIPESTATUS[0]}
  s=$(sed 's/\x1b\[[0-9;]*m//g' "$out" |
      grep -aoE '[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors?' | tail -1)
  if grep -aqE "ERROR: (Leak|Address|Thread)Sanitizer|\.[ch]:[0-9]+:[0-9]+: runtime error:" "$out"; then
    bad "$label: a sanitizer reported an error (above)"
  fi
  rm -f "$out"
  if [ -z "$s" ]; then bad "$label: busted printed no summary"; return; fi
  read -r s f e <<<"$(echo "$s" | grep -oE '[0-9]+' | tr '\n' ' ')"
  PASS=$((PASS + s))
  FAIL=$((FAIL + f + e))
  [ $((f + e)) -eq 0 ] || FAILED+=("$label: $f failures, $e errors")
  if [ $((f + e)) -eq 0 ] && [ "$rc" -ne 0 ]; then
    bad "$label: busted exited $rc with no failure counted"
  fi
}

stage "C unit tests"
if ctest --test-dir build --output-on-failure >/dev/null 2>&1; then ok "ctest"
else ctest --test-dir build --output-on-failure; bad "ctest"; fi

# The specs and the lua5.4 processes they start load corun from the tree.
export LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;$ROOT/spec/?.lua;;"
export LUA_CPATH="$ROOT/build/?.so;;"
export CORUN_BIN="$ROOT/build/bin/corun"

# A Redis server for the specs and examples that need one.
source test/redis.sh
# And a Redis Cluster (3 masters + 3 replicas) for the cluster specs.
source test/redis_cluster.sh
trap 'redis_stop; redis_cluster_stop' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
redis_start build/bin/corun || true
redis_cluster_start build/bin/corun || true

stage "specs"
busted_stage "specs" build/bin/corun-busted

stage "the Redis queue specs on the Redis Cluster"
# (spec/redis_cluster_*_spec.lua ran above, on the same cluster.) The test
# reading the stream with redis-cli -u URL needs a one-node URL.
if [ -n "${CORUN_REDIS_CLUSTER:-}" ]; then
  CORUN_REDIS_URL=$CORUN_REDIS_CLUSTER busted_stage "queue specs (cluster)" \
    build/bin/corun-busted --filter-out="strings stay readable in the stream" \
    spec/redis_queue_spec.lua spec/regress/011_redis_delay_spec.lua
else bad "queue specs (cluster): no Redis Cluster could be started"; fi

stage "examples"
for exp in examples/*.expected; do
  name=$(basename "$exp" .expected)
  out=$(mktemp)
  if timeout 120 build/bin/corun "examples/$name.lua" >"$out" 2>"$out.err" &&
     diff -u "$exp" "$out" >"$out.diff"; then ok "example $name"
  else cat "$out.diff" "$out.err"; bad "example $name"; fi
  rm -f "$out" "$out.err" "$out.diff"
done

stage "docs: the checked examples of docs/*.md"
# Each ```lua block with `-->` lines runs and must print them (see
# test/doc_examples.lua); the Redis ones use CORUN_REDIS_URL.
while IFS= read -r line; do
  case "$line" in
    "ok - "*) ok "doc ${line#ok - }" ;;
    "FAILED - "*) bad "doc ${line#FAILED - }" ;;
    *) echo "$line" ;;
  esac
done < <(lua5.4 test/doc_examples.lua build/bin/corun 2>&1)

stage "chaos: the Redis queue under kill -9 of consumers and of Redis"
# test/redis_chaos.lua starts its own redis-server (appendonly, appendfsync
# always); 5,000 items, 3 consumer processes x 4 tasks; prints the counts.
if command -v redis-server >/dev/null; then
  if timeout 180 build/bin/corun test/redis_chaos.lua build/bin/corun; then
    ok "redis queue chaos"
  else bad "redis queue chaos"; fi
else echo "no redis-server: skipped"; fi

stage "rock: luarocks make, pack and install (offline)"
if bash test/rock.sh; then ok "rock"; else bad "rock"; fi

stage "specs under AddressSanitizer + UndefinedBehaviorSanitizer + LeakSanitizer"
# Leak checking is on: the spec process and every corun child it starts
# fail on a leak (LSAN_OPTIONS names test/lsan.supp: empty, lua5.4 and
# libuv leave nothing behind).
# The runner specs run the ASan runner too: a plain binary with libasan
# preloaded can hang at exit (in libp11-kit's destructor).
LUA_CPATH="$ROOT/build-asan/?.so;;" CORUN_BIN="$ROOT/build-asan/bin/corun" \
CORUN_RUNNER="$ROOT/build-asan/bin/corun" \
LD_PRELOAD="$(gcc -print-file-name=libasan.so)" \
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
LSAN_OPTIONS="suppressions=$ROOT/test/lsan.supp" \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  busted_stage "specs (asan)" build-asan/bin/corun-busted --cpath="build-asan/?.so"

stage "examples under AddressSanitizer + LeakSanitizer (the runner)"
for exp in examples/*.expected; do
  name=$(basename "$exp" .expected)
  out=$(mktemp)
  if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
     timeout 300 build-asan/bin/corun "examples/$name.lua" >"$out" 2>"$out.err" &&
     diff -u "$exp" "$out" >"$out.diff"; then ok "example $name (asan)"
  else cat "$out.diff" "$out.err"; bad "example $name (asan)"; fi
  rm -f "$out" "$out.err" "$out.diff"
done

stage "built without Redis (-DCORUN_REDIS=OFF)"
# What a machine without hiredis builds: everything but corun.redis works,
# and corun.redis says why it is missing.
got=$(LUA_CPATH="$ROOT/build-noredis/?.so;;" lua5.4 -e '
  local corun = require "corun"
  local ok, err = pcall(function() return corun.redis end)
  print(ok, err)' 2>&1)
case "$got" in
  "false	corun was built without Redis"*) ok "no-redis: corun.redis explains" ;;
  *) echo "$got"; bad "no-redis: corun.redis explains" ;;
esac
if ldd build-noredis/corun/core.so | grep -q hiredis; then
  bad "no-redis: core.so does not link hiredis"
else ok "no-redis: core.so does not link hiredis"; fi
LUA_CPATH="$ROOT/build-noredis/?.so;;" CORUN_BIN="$ROOT/build-noredis/bin/corun" \
  busted_stage "specs (no redis)" build-noredis/bin/corun-busted \
    --cpath="build-noredis/?.so" --exclude-pattern=redis

stage "thread and channel specs under ThreadSanitizer"
# build-tsan is a Debug build with -fsanitize=thread. lua5.4 leaves Lua
# errors and yields through __longjmp_chk, which libtsan does not intercept:
# test/tsan_longjmp.c forwards it to longjmp. test/tsan.supp holds a libuv
# false positive. Children run without a shell (a shell crashes with
# libtsan preloaded).
tsanlog=$(mktemp)
if cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DCORUN_TSAN=ON \
     >"$tsanlog" 2>&1 &&
   cmake --build build-tsan -j2 >>"$tsanlog" 2>&1 &&
   gcc -U_FORTIFY_SOURCE -O1 -shared -fPIC -o build-tsan/tsan_longjmp.so \
     test/tsan_longjmp.c >>"$tsanlog" 2>&1
then
  LUA_CPATH="$ROOT/build-tsan/?.so;;" CORUN_BIN="$ROOT/build-tsan/bin/corun" \
  LD_PRELOAD="$(gcc -print-file-name=libtsan.so):$ROOT/build-tsan/tsan_longjmp.so" \
  TSAN_OPTIONS="halt_on_error=1 report_signal_unsafe=0 suppressions=$ROOT/test/tsan.supp" \
    busted_stage "specs (tsan)" build-tsan/bin/corun-busted \
      --cpath="build-tsan/?.so" spec/thread_spec.lua spec/channel_spec.lua
else tail -40 "$tsanlog"; bad "build-tsan"; fi
rm -f "$tsanlog"

stage "fuzz: the codec's decoder (libFuzzer, 60 s)"
# On a copy of the seed corpus, so that make test does not grow it; a
# crashing input is kept as build-fuzz/crash-*.
fuzzdir=$(mktemp -d)
if CC=clang cmake -S . -B build-fuzz -DCORUN_FUZZ=ON >/dev/null &&
   cmake --build build-fuzz --target fuzz_codec -j2 >"$fuzzdir.log" 2>&1 &&
   cp test/corpus/codec/* "$fuzzdir/" &&
   build-fuzz/fuzz_codec -max_total_time=60 -rss_limit_mb=2048 \
     -artifact_prefix=build-fuzz/ "$fuzzdir" >>"$fuzzdir.log" 2>&1
then tail -1 "$fuzzdir.log"; ok "fuzz codec"
else tail -40 "$fuzzdir.log"; bad "fuzz codec"; fi
rm -rf "$fuzzdir" "$fuzzdir.log"

stage "valgrind: the runner on the examples"
vglog=$(mktemp)
for ex in examples/*.lua; do
  if timeout 300 valgrind -q --leak-check=full \
       --show-leak-kinds=definite,indirect \
       --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
       build/bin/corun "$ex" >/dev/null 2>"$vglog"; then ok "valgrind $ex"
  else cat "$vglog"; bad "valgrind $ex"; fi
done
rm -f "$vglog"

echo
for f in "${FAILED[@]}"; do echo "failed: $f"; done
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
