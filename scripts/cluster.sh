#!/usr/bin/env bash
# A local lumos cluster of real processes on loopback addresses:
# 3 control nodes on 127.0.0.1-3 and SHIELDS shields on 127.0.0.11...
#
#   scripts/cluster.sh start     build nothing; uses bin/lumos (make build)
#   scripts/cluster.sh stop      stop every node (SIGTERM)
#   scripts/cluster.sh status    which nodes run
#   scripts/cluster.sh env       print the exports for the CLI
#
# Environment: LUMOS_BIN (default bin/lumos), CLUSTER_DIR (default .cluster),
# SHIELDS (default 2), BASE_PORT (default 17000).
# Every node has its own data dir and log under CLUSTER_DIR; the admin
# token, gossip key and shield tokens live there too (mode 0600).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${LUMOS_BIN:-bin/lumos}
DIR=${CLUSTER_DIR:-.cluster}
SHIELDS=${SHIELDS:-2}
BASE_PORT=${BASE_PORT:-17000}
GOSSIP=$BASE_PORT
RAFT=$((BASE_PORT + 1))
HTTP=$((BASE_PORT + 2))

control_ip() { echo "127.0.0.$1"; }
shield_ip() { echo "127.0.0.$((10 + $1))"; }

start_node() { # name, then lumos arguments
	local name=$1
	shift
	mkdir -p "$DIR/$name"
	nohup "$BIN" "$@" >"$DIR/$name.log" 2>&1 &
	echo $! >"$DIR/$name.pid"
}

wait_http() { # url, seconds
	local deadline=$((SECONDS + $2))
	until curl -fsS -o /dev/null "$1/v1/health" 2>/dev/null; do
		if [ $SECONDS -ge $deadline ]; then
			echo "timed out waiting for $1" >&2
			return 1
		fi
		sleep 0.2
	done
}

cmd_start() {
	[ -x "$BIN" ] || { echo "$BIN not found: run 'make build'" >&2; exit 1; }
	mkdir -p "$DIR"
	chmod 700 "$DIR"
	umask 077
	[ -f "$DIR/admin.token" ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' | sed 's/^/lma_/' >"$DIR/admin.token"
	[ -f "$DIR/gossip.key" ] || "$BIN" keygen >"$DIR/gossip.key" 2>/dev/null
	export LUMOS_ADDR="http://$(control_ip 1):$HTTP"
	export LUMOS_ADMIN_TOKEN="$(cat "$DIR/admin.token")"

	for i in 1 2 3; do
		local ip peers=()
		ip=$(control_ip "$i")
		for j in 1 2 3; do [ "$j" = "$i" ] || peers+=("$(control_ip "$j"):$GOSSIP"); done
		start_node "c$i" join --control --bootstrap-expect 3 --name "c$i" --data-dir "$DIR/c$i" \
			--bind "$ip:$GOSSIP" --advertise "$ip" --raft-bind "$ip:$RAFT" --http "$ip:$HTTP" \
			--gossip-key-file "$DIR/gossip.key" --admin-token-file "$DIR/admin.token" \
			--profile local "${peers[@]}"
	done
	for i in 1 2 3; do wait_http "http://$(control_ip "$i"):$HTTP" 30; done
	# Wait for a leader.
	local deadline=$((SECONDS + 30))
	until "$BIN" status --output json 2>/dev/null | grep -q '"leader": "c'; do
		[ $SECONDS -lt $deadline ] || { echo "no leader elected" >&2; exit 1; }
		sleep 0.2
	done

	for i in $(seq 1 "$SHIELDS"); do
		local name="s$i" ip
		ip=$(shield_ip "$i")
		if [ ! -f "$DIR/$name/node.json" ]; then
			"$BIN" server add "$name" --output json | sed -n 's/.*"token": "\(lmt_[a-z0-9]*\)".*/\1/p' >"$DIR/$name.token"
			[ -s "$DIR/$name.token" ] || { echo "could not create server $name" >&2; exit 1; }
		fi
		LUMOS_TOKEN="$(cat "$DIR/$name.token" 2>/dev/null || true)" start_node "$name" join --name "$name" --data-dir "$DIR/$name" \
			--bind "$ip:$GOSSIP" --advertise "$ip" --raft-bind "$ip:$RAFT" "http://$(control_ip 1):$HTTP"
	done
	for i in $(seq 1 "$SHIELDS"); do
		local deadline=$((SECONDS + 30))
		until "$BIN" server show "s$i" --output json 2>/dev/null | grep -q '"status": "online"'; do
			[ $SECONDS -lt $deadline ] || { echo "shield s$i did not come online; see $DIR/s$i.log" >&2; exit 1; }
			sleep 0.2
		done
	done
	cmd_env
}

cmd_stop() {
	local pids=()
	for f in "$DIR"/*.pid; do
		[ -f "$f" ] || continue
		local pid
		pid=$(cat "$f")
		kill "$pid" 2>/dev/null && pids+=("$pid") || true
		rm -f "$f"
	done
	for pid in "${pids[@]}"; do
		for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
	done
}

cmd_status() {
	for f in "$DIR"/*.pid; do
		[ -f "$f" ] || continue
		local name pid
		name=$(basename "$f" .pid)
		pid=$(cat "$f")
		if kill -0 "$pid" 2>/dev/null; then echo "$name running (pid $pid)"; else echo "$name stopped"; fi
	done
}

cmd_env() {
	echo "export LUMOS_ADDR=http://$(control_ip 1):$HTTP"
	echo "export LUMOS_ADMIN_TOKEN=$(cat "$DIR/admin.token")"
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
env) cmd_env ;;
*) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
