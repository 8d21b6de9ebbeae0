package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/myelindb/myelin/raftgroup/cluster"
	"github.com/myelindb/myelin/raftgroup/ring"
	"github.com/myelindb/myelin/server/querier"
	"github.com/myelindb/myelin/write"
)

// The attacks of the issue on the Raft port, as a stranger makes them:
// a raw TCP client sends the 10-byte connection header of version 1 and
// then HTTP requests of the internal protocol (a remote read of every
// series of a group, a proposal of a write batch into a group). Against
// a cluster run with -raft.insecure they work (the control: the attack
// is real); against a cluster with the secret they get nothing.

// strangerClient is an HTTP client that reaches a node's internal
// routes the way a stranger can: plain TCP to the Raft port and a
// version-1 header for an HTTP connection, no credential.
func strangerClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			hdr := append([]byte("myrx"), 1, 2) // version 1, kind HTTP
			hdr = binary.BigEndian.AppendUint32(hdr, 0)
			if _, err := c.Write(hdr); err != nil {
				c.Close()
				return nil, err
			}
			return c, nil
		},
	}}
}

// strangerRead reads every series of tenant in every group from every
// node's Raft port and returns the samples it got and the errors.
func strangerRead(c *testClusterE2E, tenant string) (samples int, errs []error) {
	all := labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")
	for _, n := range c.nodes {
		for g := ring.GroupID(1); g <= 3; g++ {
			r := querier.NewRemote(strangerClient(), "http://"+n.raftAddr, g, tenant, math.MinInt64, math.MaxInt64)
			set := r.Select(context.Background(), false, nil, all)
			for set.Next() {
				it := set.At().Iterator(nil)
				for it.Next() != 0 {
					samples++
				}
			}
			if err := set.Err(); err != nil {
				errs = append(errs, fmt.Errorf("node %s group %d: %w", n.id, g, err))
			}
			r.Close()
		}
	}
	return samples, errs
}

// strangerWrite proposes a batch of one series, metric name, into every
// group through every node's Raft port; it returns how many proposals
// were committed and the errors.
func strangerWrite(c *testClusterE2E, tenant, name string) (committed int, errs []error) {
	bb := write.NewBuilder(tenant)
	if err := bb.Add(labels.FromStrings("__name__", name), []write.Sample{{T: time.Now().UnixMilli(), V: 666}}); err != nil {
		panic(err)
	}
	var enc write.Encoder
	entry := enc.Entry(bb.Batch())
	for _, n := range c.nodes {
		for g := 1; g <= 3; g++ {
			u := fmt.Sprintf("http://%s%spropose?group=%d", n.raftAddr, cluster.PathPrefix, g)
			resp, err := strangerClient().Post(u, "application/octet-stream", bytes.NewReader(entry))
			if err != nil {
				errs = append(errs, fmt.Errorf("node %s group %d: %w", n.id, g, err))
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				committed++
			}
		}
	}
	return committed, errs
}

func TestClusterRaftPortAttacks(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		open bool // the attacks work: the control case
	}{
		{"insecure (control)", []string{"-raft.insecure"}, true},
		{"secret", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 3, false, tc.args...)
			c.startAll()
			if code, body := do(t, "POST", "http://"+c.nodes[0].http+"/api/v1/push", "", pushBody(t, "victim_metric", 1000, 2000)); code != 204 {
				t.Fatalf("push: %d %s", code, body)
			}
			samples, rerrs := strangerRead(c, "anonymous")
			committed, werrs := strangerWrite(c, "anonymous", "planted_metric")
			_, planted := do(t, "GET", "http://"+c.nodes[0].http+"/api/v1/query?query=count(planted_metric)", "", nil)
			t.Logf("stranger read %d samples (%d errors), committed %d proposals (%d errors); query: %s",
				samples, len(rerrs), committed, len(werrs), planted)
			if tc.open {
				if samples < 2 || committed == 0 || !strings.Contains(planted, `"result":[{`) {
					t.Fatalf("the control attack failed: it no longer tests anything (read %d samples, %v; committed %d, %v)",
						samples, rerrs, committed, werrs)
				}
				return
			}
			if samples > 0 || committed > 0 || !strings.Contains(planted, `"result":[]`) {
				t.Fatalf("a stranger read %d samples and committed %d proposals through the Raft port; query: %s", samples, committed, planted)
			}
			if len(rerrs) != 9 || len(werrs) != 9 {
				t.Fatalf("want every call refused: %d read errors, %d write errors", len(rerrs), len(werrs))
			}
			_, metrics := do(t, "GET", "http://"+c.nodes[0].http+"/metrics", "", nil)
			if !strings.Contains(metrics, `myelin_raft_listener_refused_connections_total{reason="version"}`) ||
				strings.Contains(metrics, `myelin_raft_listener_refused_connections_total{reason="version"} 0`) {
				t.Fatalf("refused connections not counted on /metrics")
			}
		})
	}
}

// TestClusterRogueJoin: a process started with -cluster.join and no
// secret refuses to start; with a wrong secret, or with -raft.insecure,
// it runs but never joins: the ring keeps its three nodes, and the
// members count the refused connections.
func TestClusterRogueJoin(t *testing.T) {
	c := newCluster(t, 3, false)
	c.startAll()
	join := "-cluster.join=" + c.nodes[0].raftAddr

	// No credential: exit status 2 and a message that says what to do.
	cmd := exec.Command(os.Args[0], "-data.dir", t.TempDir(), "-http.listen-address", "127.0.0.1:0",
		"-cluster.node-id", "rogue0", "-raft.listen-address", freeAddr(t), join)
	cmd.Env = append(os.Environ(), "MYELIN_TEST_RUN_MAIN=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(stderr.String(), "-raft.secret-file") {
		t.Fatalf("a joining node without a secret: %v, stderr:\n%s", err, stderr.String())
	}

	wrong := filepath.Join(t.TempDir(), "wrong-secret")
	if err := runCommand([]string{"secret", "create", "-file", wrong}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	rogues := []*e2eNode{
		{id: "rogue1", raftAddr: freeAddr(t), dataDir: filepath.Join(t.TempDir(), "rogue1"), args: e2eClusterArgs},
		{id: "rogue2", raftAddr: freeAddr(t), dataDir: filepath.Join(t.TempDir(), "rogue2"), args: e2eClusterArgs},
	}
	c.start(rogues[0], join, "-raft.secret-file", wrong)
	c.start(rogues[1], join, "-raft.insecure")
	// The rogue was a voter in two groups within 5 s.
	time.Sleep(6 * time.Second)
	r := c.waitRing(c.nodes[:3], 10*time.Second)
	for _, n := range r.Nodes {
		if strings.HasPrefix(n.ID, "rogue") {
			t.Fatalf("rogue node %s in the ring: %+v", n.ID, r.Nodes)
		}
	}
	for _, g := range r.Groups {
		for _, rep := range g.Replicas {
			if strings.HasPrefix(rep.Node, "rogue") {
				t.Fatalf("rogue node %s holds a replica of group %d", rep.Node, g.ID)
			}
		}
	}
	if !strings.Contains(rogues[0].proc.log.String(), "do not share the cluster secret") {
		t.Errorf("the rogue with a wrong secret does not log why it cannot join:\n%s", rogues[0].proc.log.String())
	}
	_, metrics := do(t, "GET", "http://"+c.nodes[0].http+"/metrics", "", nil)
	for _, reason := range []string{"auth", "version"} {
		if strings.Contains(metrics, fmt.Sprintf("myelin_raft_listener_refused_connections_total{reason=%q} 0\n", reason)) {
			t.Errorf("node 1 counted no refused connection for reason %s", reason)
		}
	}
}
