package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
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

	"github.com/myelindb/myelin/raftgroup"
	"github.com/myelindb/myelin/server"
)

// clusterConfig are the flags of cluster mode (and the Raft log flags,
// which a single node honours too). Without -cluster.node-id the node is
// a single node (one group of one replica) as before.
type clusterConfig struct {
	nodeID      string
	peersFlag   string
	join        bool
	listenAddr  string
	advertise   string
	heartbeat   time.Duration
	tlsCert     string
	tlsKey      string
	tlsCA       string
	snapshotThr uint64
	trailing    uint64
	logStore    string

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
		"The group's initial voters, this node included: comma-separated ID=RAFT_ADDRESS,\n"+
			"e.g. `1=10.0.0.1:9095,2=10.0.0.2:9095,3=10.0.0.3:9095`. Every node of a new cluster gets\n"+
			"the same list and bootstraps the same configuration; later starts recover it from the log.\n"+
			"This node dials a peer at the address given here (then the one in the group's configuration).")
	fs.BoolVar(&c.join, "cluster.join", false, "Start as a new replica that waits to be added to a running group\n"+
		"(POST /admin/raft/members on any node) instead of bootstrapping one.")
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
		if c.peersFlag != "" || c.join {
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
	case c.join && len(c.peers) > 0 && c.peers[c.nodeID] != "":
		errs = append(errs, errors.New("-cluster.join: this node must not be in -cluster.peers (it is added later)"))
	case !c.join && len(c.peers) == 0:
		errs = append(errs, errors.New("-cluster.node-id needs -cluster.peers (or -cluster.join)"))
	case !c.join && c.peers[c.nodeID] == "":
		errs = append(errs, fmt.Errorf("-cluster.peers does not name this node %q", c.nodeID))
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

// voters is the bootstrap configuration: every peer at its address, this
// node at its advertised one.
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

// resolve is the address to dial node id at: -cluster.peers, else the
// group configuration's (nodes added later). "" if unknown.
func (n *node) resolve(id string) string {
	if id == n.cfg.nodeID {
		return n.cfg.advertise
	}
	if a := n.cfg.peers[id]; a != "" {
		return a
	}
	if rg := n.rgp.Load(); rg != nil {
		return rg.MemberAddress(id)
	}
	return ""
}

// Leader implements server.Leadership.
func (n *node) Leader() (id string, local bool) {
	if n.rg.IsLeader() {
		return n.cfg.nodeID, true
	}
	id, _ = n.rg.Leader()
	return id, false
}

// VerifyRead implements server.Leadership.
func (n *node) VerifyRead(ctx context.Context) error { return n.rg.VerifyRead(ctx) }

// dialHTTP connects to the HTTP server of node id over its Raft listener
// (forwarded requests).
func (n *node) dialHTTP(ctx context.Context, id string) (net.Conn, error) {
	addr := n.resolve(id)
	if addr == "" {
		return nil, fmt.Errorf("no address for node %s", id)
	}
	return n.mux.Dial(ctx, addr, raftgroup.KindHTTP, 0)
}

// nodeStatus is GET /admin/raft/status.
type nodeStatus struct {
	NodeID string `json:"node_id"`
	Group  uint32 `json:"group"`
	raftgroup.Status
	EngineApplied uint64 `json:"engine_applied_index"`
	Error         string `json:"error,omitempty"`
	Checksum      string `json:"checksum,omitempty"` // sha256 of /admin/raft/data
	Series        int    `json:"series,omitempty"`
	Samples       int    `json:"samples,omitempty"`
}

// Status implements server.Membership.
func (n *node) Status(ctx context.Context, checksum bool) (any, error) {
	st, err := n.rg.Status()
	if err != nil {
		return nil, err
	}
	ns := nodeStatus{NodeID: n.cfg.nodeID, Group: groupID, Status: st, EngineApplied: n.eg.AppliedIndex()}
	if err := n.rg.Err(); err != nil {
		ns.Error = err.Error()
	}
	if checksum {
		h := sha256.New()
		series, samples, err := n.dump(ctx, h)
		if err != nil {
			return nil, err
		}
		ns.Checksum, ns.Series, ns.Samples = hex.EncodeToString(h.Sum(nil)), series, samples
	}
	return ns, nil
}

// Dump implements server.Membership.
func (n *node) Dump(ctx context.Context, w io.Writer) error {
	_, _, err := n.dump(ctx, w)
	return err
}

// dump writes every float sample of the group on this replica, one line
// per sample: tenant, series labels, timestamp (ms) and the value's bits
// in hex, tenants and series sorted. Replicas with identical data write
// identical bytes.
func (n *node) dump(ctx context.Context, w io.Writer) (series, samples int, err error) {
	all := labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")
	for _, ts := range n.eg.Stats() {
		q, err := n.eg.Querier(ts.Tenant, math.MinInt64, math.MaxInt64)
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

// AddVoter implements server.Membership.
func (n *node) AddVoter(ctx context.Context, id, address string) error {
	if !nodeIDRe.MatchString(id) {
		return fmt.Errorf("%w: node id %q", server.ErrBadRequest, id)
	}
	if _, _, err := net.SplitHostPort(address); err != nil {
		return fmt.Errorf("%w: address %q: %v", server.ErrBadRequest, address, err)
	}
	return membershipErr(n.rg.AddVoter(ctx, id, address))
}

// RemoveServer implements server.Membership.
func (n *node) RemoveServer(ctx context.Context, id string) error {
	return membershipErr(n.rg.RemoveServer(ctx, id))
}

func membershipErr(err error) error {
	if errors.Is(err, raftgroup.ErrNotLeader) || errors.Is(err, raftgroup.ErrLeadershipLost) || errors.Is(err, raftgroup.ErrClosed) {
		return fmt.Errorf("%w: %w", server.ErrUnavailable, err)
	}
	return err
}
