package raftgroup

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
)

// The secret handshake (header version 2, "Node listener" in doc.go):
// with MuxOptions.Secret every connection proves, both ways, that each
// end holds the cluster secret before either sends a byte of Raft or
// HTTP:
//
//	dialer   -> listener: hello = header (version 2) | client nonce [32]
//	listener -> dialer:   server nonce [32] | server proof [32]
//	dialer   -> listener: client proof [32]
//
//	key          = HMAC-SHA256(secret, "myelin node listener v2")
//	server proof = HMAC-SHA256(key, "myrx v2 server" | hello | server nonce | binding)
//	client proof = HMAC-SHA256(key, "myrx v2 client" | hello | server nonce | binding)
//	binding      = 32 bytes of TLS keying material (RFC 5705, label
//	               "EXPORTER-myelin-node-listener") with TLS, else none
//
// The dialer checks the server proof before it sends its own, so a
// listener without the secret gets nothing but the hello; the listener
// checks the client proof before it routes the connection. Fresh nonces
// on both ends make a recorded proof useless on another connection, and
// the role labels keep a server proof from serving as a client proof
// (reflection). Without TLS the secret authenticates the connection's
// start, not its bytes after it (docs/design.md "Auth").
const (
	nonceSize       = 32
	proofSize       = sha256.Size
	helloSize       = muxHeaderSize + nonceSize
	keyLabel        = "myelin node listener v2"
	serverLabel     = "myrx v2 server"
	clientLabel     = "myrx v2 client"
	exporterLabel   = "EXPORTER-myelin-node-listener"
	minSecretBytes  = 16
	muxVersionNoKey = 1 // header only: mutual TLS or an open port
	muxVersionKey   = 2 // header and the secret handshake
)

// ErrUnauthenticated: the other end of a connection did not prove that it
// holds the cluster secret, or did not try (another header version).
var ErrUnauthenticated = errors.New("raftgroup: the other node did not prove the cluster secret")

// deriveKey is the HMAC key of the handshake for a cluster secret.
func deriveKey(secret []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(keyLabel))
	return mac.Sum(nil)
}

// proof is a handshake proof of role (serverLabel or clientLabel).
func proof(key []byte, role string, hello, serverNonce, binding []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(role))
	mac.Write(hello)
	mac.Write(serverNonce)
	mac.Write(binding)
	return mac.Sum(nil)
}

// binding returns the TLS keying material of c, or nil for a plain
// connection.
func binding(c net.Conn) ([]byte, error) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return nil, nil
	}
	st := tc.ConnectionState()
	b, err := st.ExportKeyingMaterial(exporterLabel, nil, 32)
	if err != nil {
		return nil, fmt.Errorf("TLS keying material: %w", err)
	}
	return b, nil
}

// serverHandshake runs the listener's side on c after the header's first
// muxHeaderSize bytes (hdr, version 2) were read.
func serverHandshake(c net.Conn, key, hdr []byte) error {
	hello := make([]byte, helloSize, helloSize+nonceSize+proofSize)
	copy(hello, hdr)
	if _, err := io.ReadFull(c, hello[muxHeaderSize:]); err != nil {
		return fmt.Errorf("read client nonce: %w", err)
	}
	bind, err := binding(c)
	if err != nil {
		return err
	}
	reply := make([]byte, nonceSize, nonceSize+proofSize)
	if _, err := rand.Read(reply); err != nil {
		return err
	}
	reply = append(reply, proof(key, serverLabel, hello, reply[:nonceSize], bind)...)
	if _, err := c.Write(reply); err != nil {
		return fmt.Errorf("write server proof: %w", err)
	}
	got := make([]byte, proofSize)
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("%w: read client proof: %v", ErrUnauthenticated, err)
	}
	if !hmac.Equal(got, proof(key, clientLabel, hello, reply[:nonceSize], bind)) {
		return fmt.Errorf("%w: wrong client proof", ErrUnauthenticated)
	}
	return nil
}

// clientHandshake runs the dialer's side on c: it sends hello (a version
// 2 header and a fresh nonce) and checks the listener's proof before it
// sends its own.
func clientHandshake(c net.Conn, key []byte, kind ConnKind, group uint32) error {
	hello := appendMuxHeader(make([]byte, 0, helloSize), muxVersionKey, kind, group)
	hello = hello[:helloSize]
	if _, err := rand.Read(hello[muxHeaderSize:]); err != nil {
		return err
	}
	if _, err := c.Write(hello); err != nil {
		return fmt.Errorf("write header: %w", err)
	}
	reply := make([]byte, nonceSize+proofSize)
	if _, err := io.ReadFull(c, reply); err != nil {
		// A listener of another version, or without the secret's
		// version, closes the connection after the header.
		return fmt.Errorf("%w: no proof (%v): does it run with the same -raft.secret-file?", ErrUnauthenticated, err)
	}
	bind, err := binding(c)
	if err != nil {
		return err
	}
	serverNonce := reply[:nonceSize]
	if !hmac.Equal(reply[nonceSize:], proof(key, serverLabel, hello, serverNonce, bind)) {
		return fmt.Errorf("%w: wrong server proof", ErrUnauthenticated)
	}
	if _, err := c.Write(proof(key, clientLabel, hello, serverNonce, bind)); err != nil {
		return fmt.Errorf("write client proof: %w", err)
	}
	return nil
}
