package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/myelindb/myelin/bench/internal/load"
)

// Options say what to start.
type Options struct {
	Bin string // the myelin binary
	// Dir holds each node's data directory (Dir/<id>) and log (Dir/<id>.log).
	Dir string
	// Nodes: how many. Zero means 1.
	Nodes int
	// Plain starts one node without cluster flags (Myelin's single-node
	// mode); Nodes must then be 1.
	Plain bool
	// Args are appended to every node's command line.
	Args []string
	// ReadyTimeout bounds the wait for the ring to converge. Zero means 2
	// minutes.
	ReadyTimeout time.Duration
	// NodeReadyTimeout bounds the wait for one node's /ready. Zero means 1
	// minute.
	NodeReadyTimeout time.Duration
	Log              func(format string, args ...any) // nil means discard
}

func (o Options) withDefaults() Options {
	if o.Nodes == 0 {
		o.Nodes = 1
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 2 * time.Minute
	}
	if o.NodeReadyTimeout == 0 {
		o.NodeReadyTimeout = time.Minute
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	return o
}

// Validate reports every problem of o at once.
func (o Options) Validate() error {
	var errs []error
	if o.Bin == "" {
		errs = append(errs, errors.New("cluster: no binary"))
	}
	if o.Dir == "" {
		errs = append(errs, errors.New("cluster: no directory"))
	}
	if o.Nodes < 0 {
		errs = append(errs, fmt.Errorf("cluster: %d nodes", o.Nodes))
	}
	if o.Plain && o.Nodes > 1 {
		errs = append(errs, fmt.Errorf("cluster: plain single-node mode with %d nodes", o.Nodes))
	}
	return errors.Join(errs...)
}

// Node is one Myelin process. Its fields are immutable after Start.
type Node struct {
	ID       string // n1, n2, ...
	HTTPAddr string // host:port
	RaftAddr string // host:port; empty in plain mode
	DataDir  string
	LogPath  string

	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
	waitErr error         // valid after exited is closed
}

// PID returns the node's process ID.
func (n *Node) PID() int { return n.cmd.Process.Pid }

// Args returns the command line of node n (without the binary): in
// cluster mode its ID, Raft and HTTP addresses and data directory, and
// -cluster.join=join unless join is empty (the first node); in plain mode
// only the HTTP address and data directory. Tenancy is off in both, so
// every request is the tenant "anonymous". extra is appended.
func Args(n Node, plain bool, join string, extra []string) []string {
	var a []string
	if !plain {
		a = append(a, "-cluster.node-id="+n.ID, "-raft.listen-address="+n.RaftAddr)
	}
	a = append(a, "-http.listen-address="+n.HTTPAddr, "-data.dir="+n.DataDir, "-auth.multitenancy-enabled=false")
	if !plain && join != "" {
		a = append(a, "-cluster.join="+join)
	}
	return append(a, extra...)
}

// Cluster is a set of running nodes. Stop is safe to call from one
// goroutine at a time.
type Cluster struct {
	Nodes []*Node
	// Ring is the first ring that was ready (cluster mode only).
	Ring Ring
	// ReadyAfter is the time from the first start until ready.
	ReadyAfter time.Duration
	stopped    bool
}

// Start starts the nodes as the package doc says and waits until they
// are ready. On error every node it started is stopped.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	addrs, err := freeAddrs(2 * opts.Nodes)
	if err != nil {
		return nil, err
	}
	extra := opts.Args
	if !opts.Plain {
		// A listening node needs a credential: every node gets one
		// cluster secret, as a user's cluster would.
		secret, err := writeSecret(opts.Dir)
		if err != nil {
			return nil, err
		}
		extra = append([]string{"-raft.secret-file=" + secret}, extra...)
	}
	c := &Cluster{}
	t0 := time.Now()
	for i := range opts.Nodes {
		n := &Node{ID: "n" + strconv.Itoa(i+1), HTTPAddr: addrs[2*i]}
		if !opts.Plain {
			n.RaftAddr = addrs[2*i+1]
		}
		n.DataDir = filepath.Join(opts.Dir, n.ID)
		n.LogPath = filepath.Join(opts.Dir, n.ID+".log")
		join := ""
		if i > 0 {
			join = c.Nodes[0].RaftAddr
		}
		args := Args(*n, opts.Plain, join, extra)
		opts.Log("start %s: %s %v", n.ID, opts.Bin, args)
		if err := n.start(opts.Bin, args); err != nil {
			return nil, errors.Join(err, c.Stop())
		}
		c.Nodes = append(c.Nodes, n)
		if err := n.waitReady(ctx, opts.NodeReadyTimeout); err != nil {
			return nil, errors.Join(err, c.Stop())
		}
	}
	if !opts.Plain {
		ring, err := c.waitRing(ctx, opts.ReadyTimeout)
		if err != nil {
			return nil, errors.Join(err, c.Stop())
		}
		c.Ring = ring
	}
	c.ReadyAfter = time.Since(t0)
	return c, nil
}

// writeSecret writes a new cluster secret (32 random bytes in hex) to
// dir/cluster-secret, readable by its owner only, and returns the path.
func writeSecret(dir string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "cluster-secret")
	if err := os.WriteFile(path, []byte(hex.EncodeToString(b)+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write cluster secret: %w", err)
	}
	return path, nil
}

// freeAddrs returns n distinct free loopback addresses. All are held open
// until all are found, so none is handed out twice.
func freeAddrs(n int) ([]string, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	out := make([]string, n)
	for i := range out {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		out[i] = l.Addr().String()
	}
	return out, nil
}

func (n *Node) start(bin string, args []string) error {
	if err := os.MkdirAll(n.DataDir, 0o755); err != nil {
		return err
	}
	logf, err := os.Create(n.LogPath)
	if err != nil {
		return err
	}
	n.cmd = exec.Command(bin, args...)
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	n.exited = make(chan struct{})
	if err := n.cmd.Start(); err != nil {
		return errors.Join(fmt.Errorf("start %s: %w", n.ID, err), logf.Close())
	}
	// Owned by the node: ends when the process does, which Stop ensures.
	go func() {
		n.waitErr = n.cmd.Wait()
		logf.Close()
		close(n.exited)
	}()
	return nil
}

// waitReady polls /ready until it answers 200.
func (n *Node) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	url := "http://" + n.HTTPAddr + "/ready"
	for {
		if code, _, err := get(ctx, url); err == nil && code == http.StatusOK {
			return nil
		}
		if err := n.wait(ctx, 100*time.Millisecond); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s not ready within %v; log %s:\n%s", n.ID, timeout, n.LogPath, tail(n.LogPath))
		}
	}
}

// wait sleeps for d; it fails early if the node exited or ctx ended.
func (n *Node) wait(ctx context.Context, d time.Duration) error {
	select {
	case <-n.exited:
		return fmt.Errorf("node %s exited: %v; log %s:\n%s", n.ID, n.waitErr, n.LogPath, tail(n.LogPath))
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// waitRing polls the first node's ring until it is ready.
func (c *Cluster) waitRing(ctx context.Context, timeout time.Duration) (Ring, error) {
	ids := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		ids[i] = n.ID
	}
	url := "http://" + c.Nodes[0].HTTPAddr + "/ring?format=json"
	deadline := time.Now().Add(timeout)
	var last []byte
	var why error
	for {
		code, body, err := get(ctx, url)
		switch {
		case err != nil:
			why = err
		case code != http.StatusOK:
			why, last = fmt.Errorf("GET %s: %d", url, code), body
		default:
			last = body
			ring, err := ParseRing(body)
			if err == nil {
				if err = ring.Ready(ids); err == nil {
					return ring, nil
				}
			}
			why = err
		}
		if err := c.Alive(); err != nil {
			return Ring{}, err
		}
		if err := c.Nodes[0].wait(ctx, 250*time.Millisecond); err != nil {
			return Ring{}, err
		}
		if time.Now().After(deadline) {
			return Ring{}, fmt.Errorf("cluster of %d not ready within %v: %v; last /ring: %s", len(c.Nodes), timeout, why, truncate(last, 4000))
		}
	}
}

// Alive returns an error naming the first node that has exited.
func (c *Cluster) Alive() error {
	for _, n := range c.Nodes {
		select {
		case <-n.exited:
			return fmt.Errorf("node %s exited: %v; log %s:\n%s", n.ID, n.waitErr, n.LogPath, tail(n.LogPath))
		default:
		}
	}
	return nil
}

// PIDs returns the nodes' process IDs.
func (c *Cluster) PIDs() []int {
	out := make([]int, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.PID()
	}
	return out
}

// DataDirs returns the nodes' data directories.
func (c *Cluster) DataDirs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.DataDir
	}
	return out
}

// Stop sends SIGTERM to every running node at once and waits for all;
// one still running after a minute is killed, which is an error.
func (c *Cluster) Stop() error {
	if c.stopped {
		return nil
	}
	c.stopped = true
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, n := range c.Nodes {
		wg.Go(func() {
			if err := n.stop(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (n *Node) stop() error {
	if err := load.Stop(n.cmd.Process, n.exited, time.Minute); err != nil {
		return fmt.Errorf("stop node %s (log %s): %w", n.ID, n.LogPath, err)
	}
	return nil
}

func get(ctx context.Context, url string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body, err
}

// tail returns the last lines of a log file, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	return string(bytes.Join(lines[max(0, len(lines)-15):], []byte("\n")))
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "..."
}
