package cluster

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestArgs(t *testing.T) {
	n := Node{ID: "n2", HTTPAddr: "127.0.0.1:1002", RaftAddr: "127.0.0.1:2002", DataDir: "/d/n2"}
	for _, tc := range []struct {
		name  string
		plain bool
		join  string
		extra []string
		want  string
	}{
		{"first node", false, "", nil,
			"-cluster.node-id=n2 -raft.listen-address=127.0.0.1:2002 -http.listen-address=127.0.0.1:1002 -data.dir=/d/n2 -auth.multitenancy-enabled=false"},
		{"joining node", false, "127.0.0.1:2001", []string{"-x=1"},
			"-cluster.node-id=n2 -raft.listen-address=127.0.0.1:2002 -http.listen-address=127.0.0.1:1002 -data.dir=/d/n2 -auth.multitenancy-enabled=false -cluster.join=127.0.0.1:2001 -x=1"},
		{"plain", true, "127.0.0.1:2001", nil,
			"-http.listen-address=127.0.0.1:1002 -data.dir=/d/n2 -auth.multitenancy-enabled=false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, strings.Join(Args(n, tc.plain, tc.join, tc.extra), " "))
		})
	}
}

const readyRing = `{"converged": true, "generation": 7,
 "nodes": [{"id": "n1", "state": "active", "raft": "127.0.0.1:1"}, {"id": "n2", "state": "active"}, {"id": "n3", "state": "active"}],
 "groups": [
  {"id": 1, "leader": "n2", "replicas": [{"node": "n1", "voter": true}, {"node": "n2", "voter": true}, {"node": "n3", "voter": true}]},
  {"id": 2, "leader": "n1", "replicas": [{"node": "n1", "voter": true}, {"node": "n2", "voter": true}, {"node": "n3", "voter": true}]},
  {"id": 3, "leader": "n2", "replicas": [{"node": "n1", "voter": true}, {"node": "n2", "voter": true}, {"node": "n3", "voter": false}]}]}`

func TestRingReady(t *testing.T) {
	ids := []string{"n1", "n2", "n3"}
	for _, tc := range []struct {
		name string
		body string
		ids  []string
		want string // substring of the error; empty: ready
	}{
		{"ready", readyRing, ids, ""},
		{"fewer expected nodes", readyRing, ids[:2], ""},
		{"not converged", strings.Replace(readyRing, `"converged": true`, `"converged": false`, 1), ids, "not converged"},
		{"joining node", strings.Replace(readyRing, `{"id": "n3", "state": "active"}`, `{"id": "n3", "state": "joining"}`, 1), ids, `node n3 is "joining"`},
		{"missing node", readyRing, []string{"n1", "n2", "n3", "n4"}, "node n4 not listed"},
		{"no leader", strings.Replace(readyRing, `"leader": "n1"`, `"leader": ""`, 1), ids, "group 2 has no leader"},
		{"no groups", `{"converged": true, "nodes": [{"id": "n1", "state": "active"}], "groups": []}`, ids[:1], "no groups"},
		{"everything at once", `{"converged": false}`, ids[:1], "not converged; node n1 not listed; no groups"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseRing([]byte(tc.body))
			require.NoError(t, err)
			err = r.Ready(tc.ids)
			if tc.want == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tc.want)
			}
		})
	}
	_, err := ParseRing([]byte(`<html>`))
	require.Error(t, err)
}

func TestRingSummary(t *testing.T) {
	r, err := ParseRing([]byte(readyRing))
	require.NoError(t, err)
	require.Equal(t, "3 groups, 1 with 2 voters, 2 with 3 voters, leaders n1:1 n2:2", r.Summary())
	r.Groups = r.Groups[:2]
	r.ReplicationFactor = 3
	require.Equal(t, "RF 3, 2 groups, 3 voters each, leaders n1:1 n2:1", r.Summary())
}

func TestValidate(t *testing.T) {
	require.NoError(t, Options{Bin: "b", Dir: "d", Nodes: 3}.Validate())
	err := Options{Nodes: 2, Plain: true}.Validate()
	require.ErrorContains(t, err, "no binary")
	require.ErrorContains(t, err, "no directory")
	require.ErrorContains(t, err, "plain single-node mode with 2 nodes")
}

// fakeEnv makes the test binary a fake node (see TestMain).
const fakeEnv = "CLUSTER_TEST_FAKE_NODE"

// TestMain runs the test binary as a fake Myelin node when fakeEnv is set:
// it serves /ready, and /ring with the node IDs listed in fakeEnv
// ("n1,n2"), converged a second after it started; SIGTERM ends it.
func TestMain(m *testing.M) {
	if ids := os.Getenv(fakeEnv); ids != "" {
		fakeNode(strings.Split(ids, ","))
		return
	}
	os.Exit(m.Run())
}

func fakeNode(ids []string) {
	var addr string
	for _, a := range os.Args[1:] {
		if v, ok := strings.CutPrefix(a, "-http.listen-address="); ok {
			addr = v
		}
	}
	t0 := time.Now()
	mux := http.NewServeMux()
	mux.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/ring", func(w http.ResponseWriter, r *http.Request) {
		var nodes []string
		for _, id := range ids {
			nodes = append(nodes, fmt.Sprintf(`{"id": %q, "state": "active"}`, id))
		}
		fmt.Fprintf(w, `{"converged": %t, "nodes": [%s], "groups": [{"id": 1, "leader": %q, "replicas": [{"node": %q, "voter": true}]}]}`,
			time.Since(t0) > time.Second, strings.Join(nodes, ","), ids[0], ids[0])
	})
	srv := &http.Server{Addr: addr, Handler: mux}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	go srv.ListenAndServe()
	<-ctx.Done()
	srv.Close()
}

// TestStartStop starts fake nodes (the test binary) as a cluster of 3 and
// as a plain node.
func TestStartStop(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	t.Setenv(fakeEnv, "n1,n2,n3")
	c, err := Start(t.Context(), Options{Bin: exe, Dir: t.TempDir(), Nodes: 3, ReadyTimeout: 20 * time.Second})
	require.NoError(t, err)
	require.Len(t, c.Nodes, 3)
	require.Len(t, c.PIDs(), 3)
	require.True(t, c.Ring.Converged)
	require.GreaterOrEqual(t, c.ReadyAfter, time.Second)
	require.NoError(t, c.Alive())
	require.NoError(t, c.Stop())
	require.NoError(t, c.Stop(), "idempotent")
	require.Error(t, c.Alive())

	// A cluster of 4 whose ring lists 3 never gets ready.
	_, err = Start(t.Context(), Options{Bin: exe, Dir: t.TempDir(), Nodes: 4, ReadyTimeout: 1500 * time.Millisecond})
	require.ErrorContains(t, err, "node n4 not listed")
	require.ErrorContains(t, err, "last /ring: {")

	p, err := Start(t.Context(), Options{Bin: exe, Dir: t.TempDir(), Plain: true})
	require.NoError(t, err)
	require.Empty(t, p.Nodes[0].RaftAddr)
	require.NoError(t, p.Stop())
}
