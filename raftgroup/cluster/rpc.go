package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/myelindb/myelin/raftgroup"
	"github.com/myelindb/myelin/raftgroup/ring"
)

// The control RPCs are HTTP/1.1 over the nodes' Mux (raftgroup.KindHTTP),
// under PathPrefix, served by Handler:
//
//	POST heartbeat          Report (JSON) -> HeartbeatReply; metadata leader only
//	POST drain?node=ID      plan the node's drain; metadata leader only
//	GET  status             Status (JSON); metadata leader only
//	GET  replica?group=G    raftgroup.Status of this node's replica (404: none)
//	POST rules              body: a rule change or cache generation entry
//	                        (rules.go, cachegen.go); metadata leader only;
//	                        200: {index, outcome} once committed
//	POST propose?group=G    body: a log entry; this node's replica must lead;
//	                        200: committed, the body is the apply outcome;
//	                        507: refused, the leader's disk is full (the
//	                        body says why; not retried)
//
// A call that needs a leader this node is not answers 421 with the
// leader's Mux address (metadata) or node ID (data group) in the header
// leaderHeader, or 503 if it knows none; the caller follows it once.
const PathPrefix = "/internal/cluster/"

const (
	leaderHeader = "Myelin-Leader"
)

// Report is what a node tells the metadata leader at every heartbeat.
type Report struct {
	Node     string          `json:"node"`
	Addr     string          `json:"addr"`
	Replicas []ReplicaReport `json:"replicas"`
	Tenants  []TenantStat    `json:"tenants,omitempty"`
}

// ReplicaReport is a replica's view of its group.
type ReplicaReport struct {
	Group   uint32             `json:"group"`
	State   string             `json:"state"`
	Term    uint64             `json:"term"`
	Leader  string             `json:"leader"`
	Applied uint64             `json:"applied_index"`
	Members []raftgroup.Member `json:"members"`
}

// TenantStat is a node's share of a tenant: the series of the groups it
// leads and the samples its write path accepted since it started.
type TenantStat struct {
	Tenant  string `json:"tenant"`
	Series  int    `json:"series"`
	Samples int64  `json:"samples"`
}

// HeartbeatReply answers a heartbeat.
type HeartbeatReply struct {
	Generation uint64 `json:"generation"`
	// Leaders: each group's leader as the metadata leader last heard it
	// reported, for routing to groups the node holds no replica of.
	Leaders map[uint32]string `json:"leaders,omitempty"`
}

// Handler serves the control RPCs of n (mount it at PathPrefix on the
// server of the Mux's HTTP connections, not on the public port).
func (n *Node) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PathPrefix+"heartbeat", n.serveHeartbeat)
	mux.HandleFunc("POST "+PathPrefix+"drain", n.serveDrain)
	mux.HandleFunc("GET "+PathPrefix+"status", n.serveStatus)
	mux.HandleFunc("GET "+PathPrefix+"replica", n.serveReplica)
	mux.HandleFunc("POST "+PathPrefix+"propose", n.servePropose)
	mux.HandleFunc("POST "+PathPrefix+"rules", n.serveRules)
	return mux
}

// notMetaLeader answers 421 naming the metadata leader, or 503.
func (n *Node) notMetaLeader(w http.ResponseWriter) {
	if _, addr := n.meta.g.Leader(); addr != "" {
		w.Header().Set(leaderHeader, addr)
		http.Error(w, "not the metadata leader", http.StatusMisdirectedRequest)
		return
	}
	http.Error(w, "no metadata leader", http.StatusServiceUnavailable)
}

func (n *Node) serveHeartbeat(w http.ResponseWriter, r *http.Request) {
	var rep Report
	if err := json.NewDecoder(io.LimitReader(r.Body, 16<<20)).Decode(&rep); err != nil {
		http.Error(w, "decode report: "+err.Error(), http.StatusBadRequest)
		return
	}
	if !n.meta.isLeader() {
		n.notMetaLeader(w)
		return
	}
	reply, err := n.leader.heartbeat(r.Context(), rep)
	if errors.Is(err, ErrRemoved) {
		http.Error(w, err.Error(), http.StatusGone)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, reply)
}

func (n *Node) serveDrain(w http.ResponseWriter, r *http.Request) {
	if !n.meta.isLeader() {
		n.notMetaLeader(w)
		return
	}
	if err := n.leader.drain(r.Context(), ring.NodeID(r.URL.Query().Get("node"))); err != nil {
		code := http.StatusServiceUnavailable
		if errors.Is(err, ring.ErrUnknownNode) || errors.Is(err, ring.ErrLastNode) {
			code = http.StatusBadRequest
		}
		http.Error(w, err.Error(), code)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (n *Node) serveStatus(w http.ResponseWriter, r *http.Request) {
	if !n.meta.isLeader() {
		n.notMetaLeader(w)
		return
	}
	st, err := n.leader.status()
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, st)
}

func (n *Node) serveRules(w http.ResponseWriter, r *http.Request) {
	entry, err := io.ReadAll(io.LimitReader(r.Body, maxEntryBytes+1))
	if err != nil {
		http.Error(w, "read metadata change: "+err.Error(), http.StatusBadRequest)
		return
	}
	if !n.meta.isLeader() {
		n.notMetaLeader(w)
		return
	}
	res, err := n.proposeMetaChange(r.Context(), entry)
	if err != nil {
		code := http.StatusServiceUnavailable
		if permanent(err) {
			code = http.StatusBadRequest
		}
		http.Error(w, err.Error(), code)
		return
	}
	writeJSON(w, res)
}

func (n *Node) serveReplica(w http.ResponseWriter, r *http.Request) {
	g, err := strconv.ParseUint(r.URL.Query().Get("group"), 10, 32)
	if err != nil {
		http.Error(w, "bad group: "+err.Error(), http.StatusBadRequest)
		return
	}
	rg := n.Replica(ring.GroupID(g))
	if rg == nil {
		http.Error(w, "no replica of group "+strconv.FormatUint(g, 10), http.StatusNotFound)
		return
	}
	st, err := rg.Status()
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, st)
}

func (n *Node) servePropose(w http.ResponseWriter, r *http.Request) {
	g, err := strconv.ParseUint(r.URL.Query().Get("group"), 10, 32)
	if err != nil {
		http.Error(w, "bad group: "+err.Error(), http.StatusBadRequest)
		return
	}
	entry, err := io.ReadAll(io.LimitReader(r.Body, maxEntryBytes+1))
	if err != nil {
		http.Error(w, "read entry: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(entry) > maxEntryBytes {
		http.Error(w, "entry too large", http.StatusRequestEntityTooLarge)
		return
	}
	rg := n.Replica(ring.GroupID(g))
	if rg == nil || !rg.IsLeader() {
		var id string
		if rg != nil {
			id, _ = rg.Leader()
		}
		if id == "" {
			http.Error(w, fmt.Sprintf("group %d has no leader here", g), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set(leaderHeader, id)
		http.Error(w, "not the leader of group "+strconv.FormatUint(g, 10), http.StatusMisdirectedRequest)
		return
	}
	_, outcome, err := rg.Propose(r.Context(), entry)
	if errors.Is(err, raftgroup.ErrDiskFull) {
		// Not proposed: the caller fails the write at once.
		http.Error(w, err.Error(), http.StatusInsufficientStorage)
		return
	}
	if err != nil {
		// Not proposed, or its fate unknown: the caller retries.
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	// Committed and applied: the body is the outcome (empty: none).
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	w.Write(outcome)
}

// maxEntryBytes bounds a forwarded log entry (a compressed write batch).
const maxEntryBytes = 256 << 20

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

// rpcError is a control RPC's non-2xx answer.
type rpcError struct {
	Code   int
	Leader string // leaderHeader
	Msg    string
}

func (e *rpcError) Error() string { return fmt.Sprintf("%d %s", e.Code, e.Msg) }

// rpcClient sends control RPCs and forwarded requests to other nodes'
// internal handlers over the Mux. One per node, shared by its roles.
type rpcClient struct {
	client *http.Client
}

func newRPCClient(mux *raftgroup.Mux) *rpcClient {
	return &rpcClient{client: &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				return mux.Dial(ctx, addr, raftgroup.KindHTTP, 0)
			},
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     time.Minute,
		},
	}}
}

func (c *rpcClient) close() { c.client.CloseIdleConnections() }

// call sends one control RPC to the node at addr; out, if not nil,
// receives the JSON answer. It returns the response headers and body.
// Without a deadline in ctx it gives up after 30 s.
func (c *rpcClient) call(ctx context.Context, method, addr, path string, q url.Values, body []byte, out any) (http.Header, []byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	u := "http://" + addr + PathPrefix + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, nil, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	if resp.StatusCode/100 != 2 {
		return resp.Header, nil, fmt.Errorf("%s %s: %w", method, u,
			&rpcError{Code: resp.StatusCode, Leader: resp.Header.Get(leaderHeader), Msg: string(bytes.TrimSpace(b))})
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return nil, nil, fmt.Errorf("%s %s: decode answer: %w", method, u, err)
		}
	}
	return resp.Header, b, nil
}

// replicaStatus asks the node at addr for its replica of g.
func (c *rpcClient) replicaStatus(ctx context.Context, addr string, g ring.GroupID) (raftgroup.Status, error) {
	var st raftgroup.Status
	_, _, err := c.call(ctx, http.MethodGet, addr, "replica", url.Values{"group": {strconv.FormatUint(uint64(g), 10)}}, nil, &st)
	return st, err
}
