#!/usr/bin/env bash
# A local lumos cluster of real processes on loopback addresses:
# 3 control nodes on 127.0.0.1-3 and SHIELDS shields on 127.0.0.11...
#
#   scripts/cluster.sh start          build nothing; uses bin/lumos (make build)
#   scripts/cluster.sh stop [NAME...] stop every node, or the named ones (SIGTERM)
#   scripts/cluster.sh restart NAME...  stop the named nodes if they run, then
#                                     start them again with the same arguments
#                                     (a shield's HAProxy keeps serving and
#                                     the restarted shield adopts it)
#   scripts/cluster.sh status         which nodes run
#   scripts/cluster.sh env            print the exports for the CLI
#
# Environment: LUMOS_BIN (default bin/lumos), CLUSTER_DIR (default .cluster),
# SHIELDS (default 2), BASE_PORT (default 17000; the cluster uses the six
# ports from it), PROFILE (gossip profile, default lan), HAPROXY_CONFIG (an
# existing HAProxy config the shields scan for sites at their first join).
# Each shield's HAProxy serves HTTP on its IP at BASE_PORT+3 and TLS
# passthrough at BASE_PORT+4; its /metrics is at BASE_PORT+5. Each control
# node serves the built-in DNS on its IP at BASE_PORT+6 (UDP and TCP).
# CONTROL_ARGS adds flags to every control node (split on spaces), e.g.
# "--recovery-hold 2s --webhook http://127.0.0.1:9999/hook".
# Every node has its own data dir and log under CLUSTER_DIR; the admin
# token, gossip key and shield tokens live there too (mode 0600). Each
# node's command line is kept in CLUSTER_DIR/NAME.args (NUL-separated) so
# that restart reuses it. Starting again on existing data dirs keeps the
# state: shields that already joined rejoin without their token.
set -euo pipefail
cd "$(dirname "$0")/.."
# A token from the caller's environment must never reach a node: shields get
# theirs explicitly, and only for their first join.
unset LUMOS_TOKEN
BIN=${LUMOS_BIN:-bin/lumos}
DIR=${CLUSTER_DIR:-.cluster}
SHIELDS=${SHIELDS:-2}
BASE_PORT=${BASE_PORT:-17000}
PROFILE=${PROFILE:-lan}
GOSSIP=$BASE_PORT
RAFT=$((BASE_PORT + 1))
HTTP=$((BASE_PORT + 2))
SHIELD_HTTP=$((BASE_PORT + 3)) # HAProxy on each shield's own IP
SHIELD_TLS=$((BASE_PORT + 4))
METRICS=$((BASE_PORT + 5))
DNS=$((BASE_PORT + 6))

control_ip() { echo "127.0.0.$1"; }
shield_ip() { echo "127.0.0.$((10 + $1))"; }

running() { # name: is its process alive?
	local pid
	[ -f "$DIR/$1.pid" ] || return 1
	pid=$(cat "$DIR/$1.pid")
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

start_node() { # name, then lumos arguments
	local name=$1
	shift
	if running "$name"; then
		echo "$name is already running (pid $(cat "$DIR/$name.pid"))" >&2
		return 0
	fi
	mkdir -p "$DIR/$name"
	printf '%s\0' "$@" >"$DIR/$name.args"
	# Append, so the log of an earlier run of the node survives a restart.
	echo "--- $(date -u +%Y-%m-%dT%H:%M:%SZ) starting $name" >>"$DIR/$name.log"
	# Nodes need neither the CLI's address nor the admin token in their
	# environment.
	nohup env -u LUMOS_ADDR -u LUMOS_ADMIN_TOKEN "$BIN" "$@" >>"$DIR/$name.log" 2>&1 &
	echo $! >"$DIR/$name.pid"
}

stop_pids() { # pids: SIGTERM, wait up to 10 s each, then SIGKILL
	local pid
	for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
	for pid in "$@"; do
		for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
	done
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

	local extra=()
	read -ra extra <<<"${CONTROL_ARGS:-}"
	for i in 1 2 3; do
		local ip peers=()
		ip=$(control_ip "$i")
		for j in 1 2 3; do [ "$j" = "$i" ] || peers+=("$(control_ip "$j"):$GOSSIP"); done
		start_node "c$i" join --control --bootstrap-expect 3 --name "c$i" --data-dir "$DIR/c$i" \
			--bind "$ip:$GOSSIP" --advertise "$ip" --raft-bind "$ip:$RAFT" --http "$ip:$HTTP" \
			--gossip-key-file "$DIR/gossip.key" --admin-token-file "$DIR/admin.token" \
			--profile "$PROFILE" --dns-listen "$ip:$DNS" ${extra[@]+"${extra[@]}"} "${peers[@]}"
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
		local args=(join --name "$name" --data-dir "$DIR/$name"
			--bind "$ip:$GOSSIP" --advertise "$ip" --raft-bind "$ip:$RAFT"
			--listen-http "$ip:$SHIELD_HTTP" --listen-tls "$ip:$SHIELD_TLS" --metrics "$ip:$METRICS"
			--haproxy-config "${HAPROXY_CONFIG:-}" "http://$(control_ip 1):$HTTP")
		if [ -f "$DIR/$name/node.json" ]; then
			# Joined before: the data dir holds what the shield needs.
			start_node "$name" "${args[@]}"
			continue
		fi
		# First join. Reuse the token of a server created by an earlier,
		# interrupted start rather than adding the same name twice.
		if [ ! -s "$DIR/$name.token" ]; then
			"$BIN" server add "$name" --output json | sed -n 's/.*"token": "\(lmt_[a-z0-9]*\)".*/\1/p' >"$DIR/$name.token"
			[ -s "$DIR/$name.token" ] || { echo "could not create server $name" >&2; exit 1; }
		fi
		LUMOS_TOKEN="$(cat "$DIR/$name.token")" start_node "$name" "${args[@]}"
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

cmd_stop() { # [name...]: default every node
	stop_nodes yes "$@"
}

stop_nodes() { # yes|no: stop the HAProxy masters shields leave running; [name...]: default every node
	local stop_haproxy=$1 files=() pids=() f pid
	shift
	if [ $# -eq 0 ]; then
		for f in "$DIR"/*.pid; do [ -f "$f" ] && files+=("$f"); done
	else
		for f in "$@"; do [ -f "$DIR/$f.pid" ] && files+=("$DIR/$f.pid"); done
	fi
	for f in ${files[@]+"${files[@]}"}; do
		pid=$(cat "$f")
		rm -f "$f"
		[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && pids+=("$pid")
	done
	[ ${#pids[@]} -eq 0 ] || stop_pids "${pids[@]}"
	# Shields leave HAProxy serving when lumos stops (the next start adopts
	# it); stopping the cluster stops those HAProxy masters too, but a
	# restart leaves them to the restarted shield.
	[ "$stop_haproxy" = yes ] || return 0
	local hp=()
	for f in ${files[@]+"${files[@]}"}; do
		f="$DIR/$(basename "$f" .pid)/haproxy/haproxy.pid"
		[ -f "$f" ] || continue
		pid=$(head -n1 "$f")
		# A stale pid file may name a reused pid: signal only an haproxy.
		[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = haproxy ] && hp+=("$pid")
	done
	[ ${#hp[@]} -eq 0 ] || stop_pids "${hp[@]}"
}

cmd_restart() { # name...
	[ $# -gt 0 ] || { echo "usage: $0 restart NAME..." >&2; exit 2; }
	[ -x "$BIN" ] || { echo "$BIN not found: run 'make build'" >&2; exit 1; }
	local name args
	for name in "$@"; do
		[ -f "$DIR/$name.args" ] || { echo "no node $name in $DIR" >&2; exit 1; }
	done
	stop_nodes no "$@"
	for name in "$@"; do
		mapfile -d '' args <"$DIR/$name.args"
		# A shield that never completed its first join still needs its token.
		if [ "${args[0]}" = join ] && [ ! -f "$DIR/$name/node.json" ] && [ -s "$DIR/$name.token" ]; then
			LUMOS_TOKEN="$(cat "$DIR/$name.token")" start_node "$name" "${args[@]}"
		else
			start_node "$name" "${args[@]}"
		fi
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
stop) shift; cmd_stop "$@" ;;
restart) shift; cmd_restart "$@" ;;
status) cmd_status ;;
env) cmd_env ;;
*) echo "usage: $0 start|stop [NAME...]|restart NAME...|status|env" >&2; exit 2 ;;
esac
