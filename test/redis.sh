#!/usr/bin/env bash
# test/redis.sh: sourced by test/run.sh. Starts a redis-server for the
# specs and examples that need one (corun.redis) on a free loopback port
# (bound with port 0 and released), persistence off, and stops it when the
# sourcing shell exits. Exports CORUN_REDIS_PORT and CORUN_REDIS_URL; specs
# and examples without them start a throwaway server of their own.
#   redis_start CORUN_BINARY     redis_stop
REDIS_PID=
redis_stop() {
  if [ -n "$REDIS_PID" ]; then
    kill "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null
    REDIS_PID=
  fi
}

redis_start() {
  local bin=$1 port
  command -v redis-server >/dev/null || {
    echo "no redis-server: the Redis specs and examples start their own"
    return 1
  }
  for _ in 1 2 3; do
    port=$("$bin" -e 'local corun = require "corun"
      local s = assert(corun.tcp.listen("127.0.0.1", 0, function() end))
      print(s.port); s:close()') || break
    redis-server --port "$port" --bind 127.0.0.1 --save '' \
      --appendonly no --daemonize no >/dev/null 2>&1 &
    REDIS_PID=$!
    for _ in $(seq 100); do
      if redis-cli -p "$port" ping >/dev/null 2>&1; then
        export CORUN_REDIS_PORT=$port
        export CORUN_REDIS_URL="redis://127.0.0.1:$port/0"
        echo "redis-server on 127.0.0.1:$port (pid $REDIS_PID)"
        return 0
      fi
      kill -0 "$REDIS_PID" 2>/dev/null || break
      sleep 0.05
    done
    redis_stop
  done
  echo "could not start redis-server: the Redis specs and examples start their own"
  return 1
}
