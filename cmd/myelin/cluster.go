package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/myelindb/myelin/engine"
	"github.com/myelindb/myelin/raftgroup"
)

// clusterConfig are the flags of cluster mode (and the Raft log flags,
// which a single node honours too). Without -cluster.node-id the node is
// a single node (one group of one replica) as before.
type clusterConfig struct {
	nodeID            string
	peersFlag         string
	joinAddr          string
	replication       int
	groupsPerNode     int
	deadAfter         time.Duration
	heartbeatInterval time.Duration
	listenAddr        string
	advertise         string
	heartbeat         time.Duration
	tlsCert           string
	tlsKey            string
	tlsCA             string
	snapshotThr       uint64
	trailing          uint64
	logStore          string

	peers map[string]string // node ID -> Raft address, from peersFlag
	order []string          // IDs of peers, sorted
}

// defaultClusterHeartbeat is the Raft heartbeat and election timeout of a
// replicated group. A follower notices a dead leader after 1-2x this and
// elects a new one within a few round trips, so failover (kill to first
// accepted write) stays under 3 s including a sender's retry backoff;
// shorter timeouts were not needed and risk spurious elections when
// fsync stalls on a busy disk.
const defaultClusterHeartbeat = 500 * time.Millisecond

func (c *clusterConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.nodeID, "cluster.node-id", "", "This node's ID in the cluster (letters, digits, '-', '_'), unique for all time;\n"+
		"empty runs a single node. Also its Raft server ID.")
	fs.StringVar(&c.peersFlag, "cluster.peers", "",
		"Optional: the nodes a new cluster starts with (the metadata group's first voters), this node\n"+
			"included: comma-separated ID=RAFT_ADDRESS, e.g. `1=10.0.0.1:9095,2=10.0.0.2:9095,3=10.0.0.3:9095`.\n"+
			"Every one of them gets the same list. Alternatively start one node alone and the others with\n"+
			"-cluster.join.")
	fs.StringVar(&c.joinAddr, "cluster.join", "", "Raft address (host:port) of any node of a running cluster: this node asks to be added\n"+
		"through it, then the placement gives it groups. Empty (or this node's own address) with\n"+
		"no -cluster.peers starts a new cluster of this node. Ignored once the node has joined.")
	fs.IntVar(&c.replication, "cluster.replication-factor", 3, "Replicas per Raft group once the cluster has that many nodes (a new cluster only).")
	fs.IntVar(&c.groupsPerNode, "cluster.groups-per-node", 1, "Raft groups created per node (a new cluster only); each node leads about this many.")
	fs.DurationVar(&c.deadAfter, "cluster.dead-after", time.Minute, "A node not heard from for this long is declared dead and its replicas are replaced\n"+
		"on other nodes (a dead node that comes back rejoins by itself).")
	fs.DurationVar(&c.heartbeatInterval, "cluster.heartbeat-interval", time.Second, "How often a node reports to the metadata leader; placement changes run as often.")
	fs.StringVar(&c.listenAddr, "raft.listen-address", ":9095", "Address of the node's Raft listener (all its groups and forwarded requests) in cluster mode.")
	fs.StringVar(&c.advertise, "raft.advertise-address", "", "Raft address other nodes reach this one at; empty means -raft.listen-address\n"+
		"(which then needs a host).")
	fs.DurationVar(&c.heartbeat, "raft.heartbeat-timeout", defaultClusterHeartbeat, "Raft heartbeat and election timeout of a replicated group.")
	fs.StringVar(&c.tlsCert, "raft.tls-cert-file", "", "PEM certificate for the Raft listener and for dialing peers; enables TLS\n"+
		"(with -raft.tls-key-file and -raft.tls-ca-file, mutual TLS).")
	fs.StringVar(&c.tlsKey, "raft.tls-key-file", "", "PEM private key of -raft.tls-cert-file.")
	fs.StringVar(&c.tlsCA, "raft.tls-ca-file", "", "PEM CA certificates that peer certificates must chain to (both directions).")
	fs.Uint64Var(&c.snapshotThr, "raft.snapshot-threshold", 8192, "Take a Raft snapshot (an engine checkpoint) after this many log entries.")
	fs.Uint64Var(&c.trailing, "raft.trailing-logs", 1024, "Log entries kept behind a snapshot, so a lagging replica catches up from the log.")
	fs.StringVar(&c.logStore, "raft.log-store", string(raftgroup.LogStoreWAL), "Raft log implementation: raft-wal or pebble.")
}

var nodeIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// parse checks the flags and fills peers. It reports every problem.
func (c *clusterConfig) parse() error {
	var errs []error
	switch raftgroup.LogStore(c.logStore) {
	case raftgroup.LogStoreWAL, raftgroup.LogStorePebble:
	default:
		errs = append(errs, fmt.Errorf("-raft.log-store %q: want raft-wal or pebble", c.logStore))
	}
	if c.nodeID == "" {
		if c.peersFlag != "" || c.joinAddr != "" {
			errs = append(errs, errors.New("-cluster.peers and -cluster.join need -cluster.node-id"))
		}
		return errors.Join(errs...)
	}
	if !nodeIDRe.MatchString(c.nodeID) {
		errs = append(errs, fmt.Errorf("-cluster.node-id %q: want 1-64 letters, digits, '-' or '_'", c.nodeID))
	}
	c.peers = map[string]string{}
	for p := range strings.SplitSeq(c.peersFlag, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		id, addr, ok := strings.Cut(p, "=")
		if !ok || !nodeIDRe.MatchString(id) {
			errs = append(errs, fmt.Errorf("-cluster.peers: %q: want ID=HOST:PORT", p))
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("-cluster.peers: %q: %w", p, err))
			continue
		}
		if _, dup := c.peers[id]; dup {
			errs = append(errs, fmt.Errorf("-cluster.peers: ID %q twice", id))
		}
		c.peers[id] = addr
		c.order = append(c.order, id)
	}
	slices.Sort(c.order)
	switch {
	case c.joinAddr != "" && len(c.peers) > 0:
		errs = append(errs, errors.New("-cluster.join and -cluster.peers exclude each other: peers start a new cluster, join enters a running one"))
	case len(c.peers) > 0 && c.peers[c.nodeID] == "":
		errs = append(errs, fmt.Errorf("-cluster.peers does not name this node %q", c.nodeID))
	}
	if c.joinAddr != "" {
		if _, _, err := net.SplitHostPort(c.joinAddr); err != nil {
			errs = append(errs, fmt.Errorf("-cluster.join %q: %w", c.joinAddr, err))
		}
	}
	if c.replication < 1 || c.replication > 9 || c.groupsPerNode < 1 || c.groupsPerNode > 64 {
		errs = append(errs, errors.New("-cluster.replication-factor wants 1..9 and -cluster.groups-per-node 1..64"))
	}
	if c.heartbeatInterval < 10*time.Millisecond || c.deadAfter < 3*c.heartbeatInterval {
		errs = append(errs, errors.New("-cluster.heartbeat-interval wants at least 10ms and -cluster.dead-after at least three of them"))
	}
	if c.advertise == "" {
		c.advertise = c.listenAddr
	}
	if host, _, err := net.SplitHostPort(c.advertise); err != nil || host == "" {
		errs = append(errs, fmt.Errorf("-raft.advertise-address %q: want HOST:PORT (set it when -raft.listen-address has no host)", c.advertise))
	}
	if (c.tlsCert == "") != (c.tlsKey == "") || (c.tlsCA != "" && c.tlsCert == "") {
		errs = append(errs, errors.New("-raft.tls-cert-file and -raft.tls-key-file go together; -raft.tls-ca-file needs them"))
	}
	if c.heartbeat < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("-raft.heartbeat-timeout %v: want at least 10ms", c.heartbeat))
	}
	return errors.Join(errs...)
}

// tlsConfig loads the Raft TLS files; nil without -raft.tls-cert-file.
func (c *clusterConfig) tlsConfig() (*tls.Config, error) {
	if c.tlsCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("load raft TLS key pair: %w", err)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.tlsCA != "" {
		pem, err := os.ReadFile(c.tlsCA)
		if err != nil {
			return nil, fmt.Errorf("read raft TLS CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("raft TLS CA %s: no PEM certificates", c.tlsCA)
		}
		conf.RootCAs, conf.ClientCAs = pool, pool
		conf.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return conf, nil
}

// voters is the metadata group's bootstrap configuration: every peer at
// its address, this node at its advertised one; nil without peers.
func (c *clusterConfig) voters() []raftgroup.Voter {
	var vs []raftgroup.Voter
	for _, id := range c.order {
		addr := c.peers[id]
		if id == c.nodeID {
			addr = c.advertise
		}
		vs = append(vs, raftgroup.Voter{ID: id, Address: addr})
	}
	return vs
}

// dumpGroup writes every float sample of the group on this replica, one line
// per sample: tenant, series labels, timestamp (ms) and the value's bits
// in hex, tenants and series sorted. Replicas with identical data write
// identical bytes.
func dumpGroup(ctx context.Context, eg *engine.Group, w io.Writer) (series, samples int, err error) {
	all := labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")
	for _, ts := range eg.Stats() {
		q, err := eg.Querier(ts.Tenant, math.MinInt64, math.MaxInt64)
		if err != nil {
			return series, samples, fmt.Errorf("dump tenant %s: %w", ts.Tenant, err)
		}
		set := q.Select(ctx, true, nil, all)
		var it chunkenc.Iterator
		var line []byte
		for set.Next() {
			s := set.At()
			series++
			ls := s.Labels().String()
			it = s.Iterator(it)
			for it.Next() == chunkenc.ValFloat {
				t, v := it.At()
				samples++
				line = fmt.Appendf(line[:0], "%s %s %d %016x\n", ts.Tenant, ls, t, math.Float64bits(v))
				if _, err := w.Write(line); err != nil {
					q.Close()
					return series, samples, err
				}
			}
			if err := it.Err(); err != nil {
				q.Close()
				return series, samples, fmt.Errorf("dump tenant %s series %s: %w", ts.Tenant, ls, err)
			}
		}
		if err := errors.Join(set.Err(), q.Close()); err != nil {
			return series, samples, fmt.Errorf("dump tenant %s: %w", ts.Tenant, err)
		}
	}
	return series, samples, nil
}
