package raftgroup

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var (
	testSecret  = []byte("0123456789abcdef0123456789abcdef")
	otherSecret = []byte("fedcba9876543210fedcba9876543210")
)

// TestMuxHandshakeGolden pins the bytes of the secret handshake (header
// version 2): a change must update doc.go, the version and this file.
func TestMuxHandshakeGolden(t *testing.T) {
	key := deriveKey(testSecret)
	hello := appendMuxHeader(nil, muxVersionKey, KindRaft, 7)
	hello = append(hello, bytes.Repeat([]byte{0x11}, nonceSize)...)
	serverNonce := bytes.Repeat([]byte{0x22}, nonceSize)
	bind := bytes.Repeat([]byte{0x33}, 32)
	var b strings.Builder
	line := func(name string, v []byte) { fmt.Fprintf(&b, "%s %s\n", name, hex.EncodeToString(v)) }
	line("header-v1-raft-group-7", appendMuxHeader(nil, muxVersionNoKey, KindRaft, 7))
	line("header-v1-http", appendMuxHeader(nil, muxVersionNoKey, KindHTTP, 0))
	line("hello-v2-raft-group-7", hello)
	line("key", key)
	line("server-proof", proof(key, serverLabel, hello, serverNonce, nil))
	line("client-proof", proof(key, clientLabel, hello, serverNonce, nil))
	line("server-proof-tls-bound", proof(key, serverLabel, hello, serverNonce, bind))
	line("client-proof-tls-bound", proof(key, clientLabel, hello, serverNonce, bind))
	path := filepath.Join("testdata", "mux_handshake.golden")
	if *rewrite {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Fatalf("handshake bytes changed (go test -run TestMuxHandshakeGolden -rewrite):\n got:\n%s\nwant:\n%s", b.String(), want)
	}
}

// newSecretMux is newMux with a secret (nil: none) and a registry.
func newSecretMux(t testing.TB, tc *tls.Config, secret []byte) (*Mux, *prometheus.Registry) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m, err := NewMux(MuxOptions{Listener: ln, TLS: tc, Secret: secret, DialTimeout: time.Second, HeaderTimeout: time.Second, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m, reg
}

// TestMuxSecretCluster replicates two groups over muxes with a secret,
// over plain TCP and over mutual TLS.
func TestMuxSecretCluster(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			var conf *tls.Config
			if useTLS {
				conf = testTLS(t)
			}
			c := &testCluster{t: t, dir: t.TempDir(), groups: map[uint32][]*Group{}, appliers: map[uint32][]*chainApplier{}}
			var voters []Voter
			for i := range 3 {
				m, _ := newSecretMux(t, conf, testSecret)
				c.muxes = append(c.muxes, m)
				c.ids = append(c.ids, fmt.Sprint("n", i+1))
				voters = append(voters, Voter{ID: c.ids[i], Address: m.Addr()})
			}
			for i, id := range c.ids {
				a := openChain(t, filepath.Join(c.dir, fmt.Sprintf("%s-1.json", id)))
				opts := c.options(1, id, a)
				opts.Voters = voters
				c.open(1, i, opts)
				c.appliers[1] = append(c.appliers[1], a)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			l := c.groups[1][c.leader(ctx, 1)]
			var last uint64
			for i := range 20 {
				last = propose(t, l, fmt.Sprint("s", i))
			}
			c.checkSame(ctx, 1, last, -1)
		})
	}
}

// expectClosed requires the other end to close conn without sending a
// byte (a reset counts: the listener closes with our bytes unread).
func expectClosed(t *testing.T, conn net.Conn) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(conn)
	if (err != nil && !errors.Is(err, syscall.ECONNRESET)) || len(b) > 0 {
		t.Fatalf("read %q, %v; want the connection closed without a byte", b, err)
	}
}

// TestMuxSecretAttacks: a node with a secret takes no connection that
// does not prove it, in either direction, and counts the refusals.
func TestMuxSecretAttacks(t *testing.T) {
	server, reg := newSecretMux(t, nil, testSecret)
	httpLn := server.HTTPListener()
	routed := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := httpLn.Accept()
			if err != nil {
				return
			}
			routed <- c
		}
	}()
	get := "GET /internal/querier/select HTTP/1.1\r\nHost: x\r\n\r\n"

	t.Run("version 1 header and an HTTP request", func(t *testing.T) {
		conn, err := net.Dial("tcp", server.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.Write(append(appendMuxHeader(nil, muxVersionNoKey, KindHTTP, 0), get...))
		expectClosed(t, conn)
	})
	t.Run("version 2 header, a nonce and garbage", func(t *testing.T) {
		conn, err := net.Dial("tcp", server.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		hello := append(appendMuxHeader(nil, muxVersionKey, KindHTTP, 0), make([]byte, nonceSize)...)
		if _, err := conn.Write(hello); err != nil {
			t.Fatal(err)
		}
		reply := make([]byte, nonceSize+proofSize)
		if _, err := io.ReadFull(conn, reply); err != nil {
			t.Fatal(err)
		}
		conn.Write(append(make([]byte, proofSize), get...))
		expectClosed(t, conn)
	})
	t.Run("replayed proof", func(t *testing.T) {
		// A client that knows the key completes one handshake; its hello
		// and proof sent again on a new connection meet a new server
		// nonce.
		key := deriveKey(testSecret)
		hello := append(appendMuxHeader(nil, muxVersionKey, KindHTTP, 0), bytes.Repeat([]byte{9}, nonceSize)...)
		var recorded []byte
		for i := range 2 {
			conn, err := net.Dial("tcp", server.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.Write(hello)
			reply := make([]byte, nonceSize+proofSize)
			if _, err := io.ReadFull(conn, reply); err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				recorded = proof(key, clientLabel, hello, reply[:nonceSize], nil)
				conn.Write(recorded)
				select {
				case c := <-routed:
					c.Close()
				case <-time.After(5 * time.Second):
					t.Fatal("a proper handshake was not routed")
				}
				continue
			}
			conn.Write(append(recorded, get...))
			expectClosed(t, conn)
		}
	})
	t.Run("wrong secret dials", func(t *testing.T) {
		rogue, _ := newSecretMux(t, nil, otherSecret)
		if _, err := rogue.Dial(t.Context(), server.Addr(), KindHTTP, 0); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("dial with another secret: %v, want ErrUnauthenticated", err)
		}
	})
	t.Run("no secret dials", func(t *testing.T) {
		open, _ := newSecretMux(t, nil, nil)
		conn, err := open.Dial(t.Context(), server.Addr(), KindHTTP, 0)
		if err != nil {
			t.Fatal(err) // version 1 writes its header without waiting
		}
		defer conn.Close()
		conn.Write([]byte(get))
		expectClosed(t, conn)
	})
	t.Run("dial a listener without the secret", func(t *testing.T) {
		// A rogue listener (a stranger's address in a configuration)
		// gets the hello and nothing else.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		got := make(chan []byte, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			c.Write(make([]byte, nonceSize+proofSize)) // a made-up proof
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			b, _ := io.ReadAll(c)
			got <- b
		}()
		if _, err := server.Dial(t.Context(), ln.Addr().String(), KindRaft, 1); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("dial a rogue listener: %v, want ErrUnauthenticated", err)
		}
		if b := <-got; len(b) != helloSize {
			t.Fatalf("the rogue listener read %d bytes, want only the %d of the hello", len(b), helloSize)
		}
	})
	select {
	case c := <-routed:
		t.Fatalf("a connection from %v reached the HTTP listener", c.RemoteAddr())
	default:
	}
	for reason, want := range map[string]float64{"version": 2, "auth": 3} {
		if got := testutil.ToFloat64(server.refused.WithLabelValues(reason)); got != want {
			t.Errorf("refused{reason=%q} = %v, want %v", reason, got, want)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "myelin_raft_listener_refused_connections_total"); err != nil || n != 4 {
		t.Errorf("refused connections metric: %d series, %v", n, err)
	}
}

// TestMuxSecretWithTLS: with TLS and a secret, a client with the CA's
// certificate but another secret is still refused (the proofs, bound to
// the TLS session, are checked after the TLS handshake).
func TestMuxSecretWithTLS(t *testing.T) {
	conf := testTLS(t)
	server, _ := newSecretMux(t, conf, testSecret)
	server.HTTPListener()
	good, _ := newSecretMux(t, conf, testSecret)
	conn, err := good.Dial(t.Context(), server.Addr(), KindHTTP, 0)
	if err != nil {
		t.Fatalf("same secret and CA: %v", err)
	}
	conn.Close()
	rogue, _ := newSecretMux(t, conf, otherSecret)
	if _, err := rogue.Dial(t.Context(), server.Addr(), KindHTTP, 0); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("same CA, other secret: %v, want ErrUnauthenticated", err)
	}
}

func TestMuxSecretValidate(t *testing.T) {
	err := MuxOptions{Advertise: "x:1", Secret: []byte("short")}.Validate()
	if err == nil || !strings.Contains(err.Error(), "at least 16") {
		t.Fatalf("short secret: %v", err)
	}
}
