#!/usr/bin/env bash
# test/redis_cluster.sh: a real Redis Cluster on loopback for the cluster
# specs (spec/redis_cluster_*_spec.lua): 3 masters + 3 replicas, each
# redis-server in a temp dir of its own (nodes.conf there), client and bus
# ports free ones (cluster-port), persistence off, cluster-node-timeout
# 1000 ms (a killed master is replaced within a few seconds).
# Sourced by test/run.sh:
#   redis_cluster_start CORUN_BINARY     redis_cluster_stop
# exports CORUN_REDIS_CLUSTER (the seed URL,
# redis://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/?cluster=1) and
# CORUN_REDIS_CLUSTER_DIR (node<i>/ holds each node's start.sh, pid, log).
# Run as a script (what a spec does without CORUN_REDIS_CLUSTER):
#   bash test/redis_cluster.sh start CORUN_BINARY   prints the two lines
#   NAME=value; bash test/redis_cluster.sh stop DIR.
REDIS_CLUSTER_DIR=

# Stop the nodes of cluster dir $1 (default: the one this shell started).
redis_cluster_stop() {
  local dir=${1:-$REDIS_CLUSTER_DIR} pidf pid
  [ -n "$dir" ] && [ -d "$dir" ] || return 0
  for pidf in "$dir"/node*/pid; do
    [ -f "$pidf" ] || continue
    pid=$(cat "$pidf")
    kill "$pid" 2>/dev/null
  done
  for pidf in "$dir"/node*/pid; do
    [ -f "$pidf" ] || continue
    pid=$(cat "$pidf")
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null
  done
  rm -rf "$dir"
  [ "$dir" = "$REDIS_CLUSTER_DIR" ] && REDIS_CLUSTER_DIR=
  return 0
}

# Wait until every node of $dir says cluster_state:ok (up to $2 s).
redis_cluster_wait_ok() {
  local dir=$1 limit=${2:-30} port ok
  for _ in $(seq $((limit * 10))); do
    ok=1
    for port in $(cat "$dir"/node*/port); do
      redis-cli -p "$port" cluster info 2>/dev/null |
        grep -q '^cluster_state:ok' || { ok=0; break; }
    done
    [ "$ok" = 1 ] && return 0
    sleep 0.1
  done
  return 1
}

redis_cluster_start() {
  local bin=$1 ports dir i p b addrs="" seeds=""
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null || {
    echo "no redis-server / redis-cli: the cluster specs start their own"
    return 1
  }
  # 12 free loopback ports at once (6 clients, 6 buses), held until all
  # are picked.
  ports=$("$bin" -e 'local corun = require "corun"
    local l = {}
    for i = 1, 12 do
      l[i] = assert(corun.tcp.listen("127.0.0.1", 0, function() end))
    end
    for i = 1, 12 do io.write(l[i].port, " "); l[i]:close() end') || return 1
  read -r -a ports <<<"$ports"
  dir=$(mktemp -d "${TMPDIR:-/tmp}/corun-cluster.XXXXXX") || return 1
  REDIS_CLUSTER_DIR=$dir
  for i in 0 1 2 3 4 5; do
    p=${ports[$i]}
    b=${ports[$((i + 6))]}
    mkdir -p "$dir/node$i"
    echo "$p" >"$dir/node$i/port"
    cat >"$dir/node$i/start.sh" <<EOS
#!/bin/sh
# starts node $i again (its nodes.conf keeps its identity)
cd "$dir/node$i" && exec redis-server --port $p --cluster-port $b \\
  --bind 127.0.0.1 --cluster-enabled yes --cluster-config-file nodes.conf \\
  --cluster-node-timeout 1000 --cluster-replica-validity-factor 0 \\
  --repl-diskless-sync-delay 0 \\
  --save '' --appendonly no --daemonize yes --pidfile "$dir/node$i/pid" \\
  --logfile "$dir/node$i/log" --dir "$dir/node$i"
EOS
    chmod +x "$dir/node$i/start.sh"
    sh "$dir/node$i/start.sh" || { redis_cluster_stop; return 1; }
    addrs="$addrs 127.0.0.1:$p"
    [ "$i" -lt 3 ] && seeds="$seeds${seeds:+,}127.0.0.1:$p"
  done
  for p in "${ports[@]:0:6}"; do
    for _ in $(seq 100); do
      redis-cli -p "$p" ping >/dev/null 2>&1 && break
      sleep 0.05
    done
  done
  # shellcheck disable=SC2086
  if ! redis-cli --cluster create $addrs --cluster-replicas 1 --cluster-yes \
       >"$dir/create.log" 2>&1 || ! redis_cluster_wait_ok "$dir" 30; then
    cat "$dir/create.log"
    echo "could not start a redis cluster: the cluster specs start their own"
    redis_cluster_stop
    return 1
  fi
  export CORUN_REDIS_CLUSTER="redis://$seeds/?cluster=1"
  export CORUN_REDIS_CLUSTER_DIR=$dir
  echo "redis cluster on$addrs ($dir)"
  return 0
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  case "${1:-}" in
    start)
      redis_cluster_start "${2:-corun}" >&2 || exit 1
      echo "CORUN_REDIS_CLUSTER=$CORUN_REDIS_CLUSTER"
      echo "CORUN_REDIS_CLUSTER_DIR=$CORUN_REDIS_CLUSTER_DIR" ;;
    stop) redis_cluster_stop "${2:?cluster dir}" ;;
    *) echo "usage: $0 start CORUN_BINARY | stop DIR" >&2; exit 2 ;;
  esac
fi
