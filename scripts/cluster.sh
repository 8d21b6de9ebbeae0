#!/bin/sh
# Start a local three-node Myelin cluster on loopback: node i serves HTTP on
# 127.0.0.1:910i and Raft on 127.0.0.1:920i, with its data in
# $CLUSTER_DIR/node-i (default ./data/cluster). Logs go to node-i.log there.
# The nodes share the cluster secret in $CLUSTER_DIR/cluster-secret, made on
# the first start: only processes that hold it can join or use the Raft
# ports. Ctrl-C (or SIGTERM) stops all three gracefully. Extra arguments are
# passed to every node.
set -eu
BIN=${BIN:-./bin/myelin}
DIR=${CLUSTER_DIR:-./data/cluster}
PEERS="1=127.0.0.1:9201,2=127.0.0.1:9202,3=127.0.0.1:9203"
mkdir -p "$DIR"
SECRET="$DIR/cluster-secret"
if [ ! -f "$SECRET" ]; then
	"$BIN" secret create -file "$SECRET"
fi
pids=""
stop() {
	trap - INT TERM EXIT
	for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
	for p in $pids; do wait "$p" 2>/dev/null || true; done
	echo "cluster stopped"
}
trap stop INT TERM EXIT
for i in 1 2 3; do
	mkdir -p "$DIR/node-$i"
	"$BIN" -data.dir "$DIR/node-$i" \
		-http.listen-address "127.0.0.1:910$i" \
		-cluster.node-id "$i" \
		-raft.listen-address "127.0.0.1:920$i" \
		-raft.secret-file "$SECRET" \
		-cluster.peers "$PEERS" "$@" \
		2>"$DIR/node-$i.log" &
	pids="$pids $!"
done
for i in 1 2 3; do
	n=0
	until curl -sf "http://127.0.0.1:910$i/ready" >/dev/null 2>&1; do
		n=$((n + 1))
		if [ $n -gt 300 ]; then echo "node $i not ready after 30s; see $DIR/node-$i.log"; exit 1; fi
		sleep 0.1
	done
done
cat <<MSG
3 nodes ready (data and logs in $DIR):
  node 1: http://127.0.0.1:9101  raft 127.0.0.1:9201
  node 2: http://127.0.0.1:9102  raft 127.0.0.1:9202
  node 3: http://127.0.0.1:9103  raft 127.0.0.1:9203
Write to and query any node (followers forward to the leader).
Node-to-node connections prove the secret in $DIR/cluster-secret;
a node joining later needs it: -raft.secret-file $DIR/cluster-secret.
Status: curl -s http://127.0.0.1:9101/admin/raft/status
Ctrl-C stops the cluster.
MSG
wait
