package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/myelindb/myelin/raftgroup"
)

func TestClusterFlags(t *testing.T) {
	const peers = "1=127.0.0.1:9201,2=127.0.0.1:9202,3=127.0.0.1:9203"
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string // "" for success
		voters  []raftgroup.Voter
	}{
		{"single node", nil, "", nil},
		{"open port", []string{"-cluster.node-id", "1", "-raft.listen-address", "127.0.0.1:1"}, "neither -raft.secret-file nor mutual TLS", nil},
		{"open port by join", []string{"-cluster.node-id", "4", "-cluster.join", "127.0.0.1:9201", "-raft.advertise-address", "127.0.0.1:1"}, "anyone who reaches the port", nil},
		{"TLS without CA", []string{"-cluster.node-id", "1", "-raft.listen-address", "127.0.0.1:1", "-raft.tls-cert-file", "c", "-raft.tls-key-file", "k"}, "TLS without -raft.tls-ca-file", nil},
		{"secret", []string{"-cluster.node-id", "1", "-raft.listen-address", "127.0.0.1:1", "-raft.secret-file", "s"}, "", nil},
		{"mutual TLS", []string{"-cluster.node-id", "1", "-raft.listen-address", "127.0.0.1:1", "-raft.tls-cert-file", "c", "-raft.tls-key-file", "k", "-raft.tls-ca-file", "c"}, "", nil},
		{"insecure", []string{"-cluster.node-id", "1", "-raft.listen-address", "127.0.0.1:1", "-raft.insecure"}, "", nil},
		{"insecure with secret", []string{"-cluster.node-id", "1", "-raft.listen-address", "127.0.0.1:1", "-raft.insecure", "-raft.secret-file", "s"}, "drop one", nil},
		{"three voters", []string{"-raft.insecure", "-cluster.node-id", "2", "-raft.listen-address", "127.0.0.1:9302", "-cluster.peers", peers}, "",
			[]raftgroup.Voter{{ID: "1", Address: "127.0.0.1:9201"}, {ID: "2", Address: "127.0.0.1:9302"}, {ID: "3", Address: "127.0.0.1:9203"}}},
		{"peers without node id", []string{"-cluster.peers", peers}, "need -cluster.node-id", nil},
		{"node not in peers", []string{"-raft.insecure", "-cluster.node-id", "4", "-raft.listen-address", "127.0.0.1:1", "-cluster.peers", peers}, "does not name this node", nil},
		{"bad peer", []string{"-raft.insecure", "-cluster.node-id", "1", "-raft.listen-address", "127.0.0.1:1", "-cluster.peers", "1=127.0.0.1:1,2"}, "want ID=HOST:PORT", nil},
		{"duplicate peer", []string{"-raft.insecure", "-cluster.node-id", "1", "-raft.listen-address", "127.0.0.1:1", "-cluster.peers", "1=a:1,1=b:2"}, "twice", nil},
		{"no advertise host", []string{"-raft.insecure", "-cluster.node-id", "1", "-cluster.peers", "1=a:1"}, "-raft.advertise-address", nil},
		{"new cluster alone", []string{"-raft.insecure", "-cluster.node-id", "1", "-raft.listen-address", "127.0.0.1:1"}, "", nil},
		{"join", []string{"-raft.insecure", "-cluster.node-id", "4", "-cluster.join", "127.0.0.1:9201", "-raft.listen-address", "127.0.0.1:1"}, "", nil},
		{"join without port", []string{"-raft.insecure", "-cluster.node-id", "4", "-cluster.join", "host", "-raft.listen-address", "127.0.0.1:1"}, "-cluster.join", nil},
		{"join and peers", []string{"-raft.insecure", "-cluster.node-id", "1", "-cluster.join", "127.0.0.1:9202", "-raft.listen-address", "127.0.0.1:1", "-cluster.peers", peers}, "exclude each other", nil},
		{"dead-after too short", []string{"-raft.insecure", "-cluster.node-id", "1", "-raft.listen-address", "127.0.0.1:1", "-cluster.dead-after", "1s"}, "dead-after", nil},
		{"replication factor", []string{"-raft.insecure", "-cluster.node-id", "1", "-raft.listen-address", "127.0.0.1:1", "-cluster.replication-factor", "0"}, "replication-factor", nil},
		{"key without cert", []string{"-raft.insecure", "-cluster.node-id", "1", "-raft.listen-address", "127.0.0.1:1", "-cluster.peers", "1=a:1", "-raft.tls-key-file", "k"}, "go together", nil},
		{"bad log store", []string{"-raft.insecure", "-cluster.node-id", "1", "-raft.listen-address", "127.0.0.1:1", "-cluster.peers", "1=a:1", "-raft.log-store", "x"}, "raft-wal or pebble", nil},
		{"bad log store, single node", []string{"-raft.log-store", "x"}, "raft-wal or pebble", nil},
		{"bad entry format", []string{"-raft.entry-format", "v9"}, "want auto, prefix or plain", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := parseFlags(tc.args, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.cluster.voters(); !slices.Equal(got, tc.voters) {
				t.Fatalf("voters %v, want %v", got, tc.voters)
			}
		})
	}
}

// TestEntryFormat: -raft.entry-format's auto writes prefix-coded entries
// on a cluster of one and the encoding earlier releases apply on a node
// that can have peers (a rolling upgrade); prefix and plain say which.
func TestEntryFormat(t *testing.T) {
	clustered := []string{"-raft.insecure", "-cluster.node-id", "1", "-raft.listen-address", "127.0.0.1:1"}
	for _, tc := range []struct {
		args  []string
		plain bool
	}{
		{nil, false},
		{clustered, true},
		{append(slices.Clone(clustered), "-raft.entry-format", "prefix"), false},
		{[]string{"-raft.entry-format", "plain"}, true},
		{[]string{"-raft.entry-format", "auto"}, false},
	} {
		cfg, _, err := parseFlags(tc.args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.cluster.plainEntries(); got != tc.plain {
			t.Errorf("%v: plain entries %v, want %v", tc.args, got, tc.plain)
		}
	}
}

// writeTestCert writes a self-signed certificate for 127.0.0.1, which is
// also its own CA, and its key, as PEM files; it returns their paths.
func writeTestCert(t *testing.T) (cert, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "myelin test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := errors.Join(
		os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600),
		os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600),
	); err != nil {
		t.Fatal(err)
	}
	return cert, keyFile
}

func TestClusterTLSFiles(t *testing.T) {
	cert, keyf := writeTestCert(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name       string
		c          clusterConfig
		wantMutual bool
		wantErr    bool
	}{
		{"off", clusterConfig{}, false, false},
		{"server and client cert", clusterConfig{tlsCert: cert, tlsKey: keyf}, false, false},
		{"mutual", clusterConfig{tlsCert: cert, tlsKey: keyf, tlsCA: cert}, true, false},
		{"CA file missing", clusterConfig{tlsCert: cert, tlsKey: keyf, tlsCA: filepath.Join(dir, "missing")}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf, err := tc.c.tlsConfig()
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err != nil || tc.c.tlsCert == "" {
				if conf != nil {
					t.Fatal("TLS config without -raft.tls-cert-file")
				}
				return
			}
			if got := conf.ClientAuth == tls.RequireAndVerifyClientCert && conf.RootCAs != nil; got != tc.wantMutual {
				t.Fatalf("mutual TLS %v, want %v", got, tc.wantMutual)
			}
		})
	}
}
