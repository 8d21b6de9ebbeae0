package raftgroup

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// Connection header (see "Node listener" in doc.go): every connection to
// a node's Raft listener starts with
//
//	magic "myrx" | version:byte | kind:byte | group:uint32 big-endian
//
// version 1 without a cluster secret; version 2 with one, followed by the
// secret handshake (muxauth.go).
const (
	muxMagic      = "myrx"
	muxHeaderSize = len(muxMagic) + 2 + 4
)

// ConnKind says what a connection to the node listener carries.
type ConnKind byte

const (
	// KindRaft: Raft RPCs of one group (a NetworkTransport stream).
	KindRaft ConnKind = 1
	// KindHTTP: HTTP requests forwarded by another node (group ignored).
	KindHTTP ConnKind = 2
)

// ErrUnknownGroup: a connection named a group this node does not serve.
var ErrUnknownGroup = errors.New("raftgroup: unknown group")

// ErrNoListener: a Mux without a listener was asked to dial another node.
var ErrNoListener = errors.New("raftgroup: this node has no Raft listener (a cluster of one; start it with -raft.listen-address to let others in)")

// MuxOptions configure a node's Raft listener.
type MuxOptions struct {
	// Listener accepts the node's Raft connections; the Mux owns it. Nil
	// makes a Mux that listens nowhere, for a node that is a cluster of
	// one nobody can join: its groups have one replica and never send a
	// Raft RPC, and a Dial fails with ErrNoListener.
	Listener net.Listener
	// Advertise is the address other nodes dial to reach this one. Empty
	// means Listener.Addr(); required without a Listener (it is the
	// node's address in its groups' configurations).
	Advertise string
	// TLS, if set, secures every connection both ways: the listener serves
	// TLS with it, and dials use it as the client config (set Certificates,
	// RootCAs, ClientCAs and ClientAuth for mutual TLS). Nil means plain
	// TCP.
	TLS *tls.Config
	// Secret, if set (at least 16 bytes, the same on every node), makes
	// both ends of every connection prove they hold it before any Raft or
	// HTTP byte (header version 2, muxauth.go); with TLS too, the proofs
	// are bound to the TLS session. A node without it accepts any client
	// that TLS lets in: with neither, anyone who reaches the listener.
	Secret []byte
	// DialTimeout bounds a dial including the TLS handshake and the
	// header. Zero means 2s.
	DialTimeout time.Duration
	// HeaderTimeout bounds how long an accepted connection may take to
	// send its header (and finish the TLS handshake). Zero means 5s.
	HeaderTimeout time.Duration
	// Resolve maps a Raft server ID to the address to dial for it, or ""
	// to use the address in the group's configuration. Nil means always
	// the configuration's.
	Resolve    func(id string) string
	Logger     *slog.Logger          // nil means discard
	Registerer prometheus.Registerer // nil means no metrics
}

func (o MuxOptions) withDefaults() MuxOptions {
	if o.DialTimeout == 0 {
		o.DialTimeout = 2 * time.Second
	}
	if o.HeaderTimeout == 0 {
		o.HeaderTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Validate reports every problem of o at once.
func (o MuxOptions) Validate() error {
	var errs []error
	if o.Listener == nil && o.Advertise == "" {
		errs = append(errs, errors.New("a Mux without a Listener needs Advertise"))
	}
	if o.DialTimeout < 0 || o.HeaderTimeout < 0 {
		errs = append(errs, errors.New("DialTimeout and HeaderTimeout must not be negative"))
	}
	if o.Secret != nil && len(o.Secret) < minSecretBytes {
		errs = append(errs, fmt.Errorf("secret has %d bytes, want at least %d", len(o.Secret), minSecretBytes))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("raftgroup mux options: %w", err)
	}
	return nil
}

// Mux is a node's one Raft listener, shared by all its groups: it reads
// each accepted connection's header and hands the connection to the
// group's stream layer (or to the HTTP listener). Its accept goroutine
// and the per-connection header readers are owned by the Mux and stopped
// by Close.
//
// Locking: mu guards the routing tables and closed.
type Mux struct {
	opts MuxOptions // immutable after NewMux
	addr muxAddr
	key  []byte        // the handshake's key (deriveKey), nil without a secret
	done chan struct{} // closed by Close
	wg   sync.WaitGroup
	// refused counts refused connections by reason: header (unreadable
	// or not ours), version (another header version: without the
	// secret, or with one this node lacks), auth (a wrong proof), route
	// (unknown group or kind).
	refused *prometheus.CounterVec

	mu struct {
		sync.Mutex
		closed bool
		groups map[uint32]*streamLayer
		http   *kindListener
		conns  map[net.Conn]struct{} // accepted, header not yet read
	}
	closeOnce sync.Once
	closeErr  error
	stopping  atomic.Bool
}

// NewMux starts serving opts.Listener.
func NewMux(opts MuxOptions) (*Mux, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	addr := opts.Advertise
	if addr == "" {
		addr = opts.Listener.Addr().String()
	}
	m := &Mux{opts: opts, addr: muxAddr(addr), done: make(chan struct{}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "myelin_raft_listener_refused_connections_total",
			Help: "Connections to the Raft listener refused, by reason: header, version (e.g. no cluster secret), auth (wrong secret), route.",
		}, []string{"reason"}),
	}
	for _, r := range []string{"header", "version", "auth", "route"} {
		m.refused.WithLabelValues(r)
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(m.refused); err != nil {
			return nil, fmt.Errorf("raftgroup mux metrics: %w", err)
		}
	}
	if opts.Secret != nil {
		m.key = deriveKey(opts.Secret)
	}
	m.mu.groups = map[uint32]*streamLayer{}
	m.mu.conns = map[net.Conn]struct{}{}
	if opts.Listener != nil {
		m.wg.Add(1)
		go m.acceptLoop()
	}
	return m, nil
}

// Listening reports whether the Mux has a listener (others can reach it).
func (m *Mux) Listening() bool { return m.opts.Listener != nil }

// Stop marks the node as shutting down (Stopping); the Mux keeps
// serving until Close. Call it when a shutdown begins, so the errors
// about peers that stop at the same time are logged as expected.
func (m *Mux) Stop() { m.stopping.Store(true) }

// Stopping reports whether Stop or Close was called.
func (m *Mux) Stopping() bool { return m.stopping.Load() }

// Addr is the address other nodes dial to reach this one.
func (m *Mux) Addr() string { return string(m.addr) }

func (m *Mux) acceptLoop() {
	defer m.wg.Done()
	for {
		c, err := m.opts.Listener.Accept()
		if err != nil {
			select {
			case <-m.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			m.opts.Logger.Error("raft listener accept", "err", err)
			return
		}
		m.mu.Lock()
		if m.mu.closed {
			m.mu.Unlock()
			c.Close()
			return
		}
		m.mu.conns[c] = struct{}{}
		m.wg.Add(1)
		m.mu.Unlock()
		go m.route(c)
	}
}

// route reads the header of c and hands it on, or closes it.
func (m *Mux) route(raw net.Conn) {
	defer m.wg.Done()
	c := raw
	if m.opts.TLS != nil {
		c = tls.Server(raw, m.opts.TLS)
	}
	c.SetDeadline(time.Now().Add(m.opts.HeaderTimeout))
	kind, group, reason, err := m.accept(c)
	c.SetDeadline(time.Time{})
	m.mu.Lock()
	delete(m.mu.conns, raw)
	closed := m.mu.closed
	var dst chan net.Conn
	var stop chan struct{}
	if err == nil && !closed {
		switch kind {
		case KindRaft:
			if l := m.mu.groups[group]; l != nil {
				dst, stop = l.conns, l.done
			} else {
				err = fmt.Errorf("group %d: %w", group, ErrUnknownGroup)
			}
		case KindHTTP:
			if m.mu.http != nil {
				dst, stop = m.mu.http.conns, m.mu.http.done
			} else {
				err = errors.New("no HTTP listener")
			}
		default:
			err = fmt.Errorf("unknown connection kind %d", kind)
		}
		if err != nil {
			reason = "route"
		}
	}
	m.mu.Unlock()
	if err != nil || closed {
		if err != nil {
			m.refused.WithLabelValues(reason).Inc()
			m.opts.Logger.Warn("raft listener: refused connection", "remote", raw.RemoteAddr().String(), "err", err)
		}
		c.Close()
		return
	}
	select {
	case dst <- c:
	case <-stop:
		c.Close()
	case <-m.done:
		c.Close()
	}
}

func appendMuxHeader(dst []byte, version byte, kind ConnKind, group uint32) []byte {
	dst = append(dst, muxMagic...)
	dst = append(dst, version, byte(kind))
	return binary.BigEndian.AppendUint32(dst, group)
}

// readMuxHeader reads a header; it checks the magic only.
func readMuxHeader(r io.Reader) (h [muxHeaderSize]byte, version byte, kind ConnKind, group uint32, err error) {
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return h, 0, 0, 0, fmt.Errorf("read connection header: %w", err)
	}
	if string(h[:4]) != muxMagic {
		return h, 0, 0, 0, fmt.Errorf("connection header %x: bad magic", h[:5])
	}
	return h, h[4], ConnKind(h[5]), binary.BigEndian.Uint32(h[6:]), nil
}

// accept reads an accepted connection's header and, with a secret, runs
// the listener's side of the handshake. On error it returns the reason
// for the refused-connections metric.
func (m *Mux) accept(c net.Conn) (kind ConnKind, group uint32, reason string, err error) {
	hdr, version, kind, group, err := readMuxHeader(c)
	if err != nil {
		return 0, 0, "header", err
	}
	switch {
	case m.key == nil && version != muxVersionNoKey:
		return 0, 0, "version", fmt.Errorf("connection header version %d, want %d: does the other node have a -raft.secret-file this one lacks?", version, muxVersionNoKey)
	case m.key != nil && version != muxVersionKey:
		return 0, 0, "version", fmt.Errorf("%w: connection header version %d, want %d (with the cluster secret)", ErrUnauthenticated, version, muxVersionKey)
	case m.key != nil:
		if err := serverHandshake(c, m.key, hdr[:]); err != nil {
			return 0, 0, "auth", err
		}
	}
	return kind, group, "", nil
}

// Dial connects to the node at address for a connection of kind (and
// group, for KindRaft): it dials, does the TLS handshake if configured,
// and writes the header (with a secret: runs the handshake, and fails
// with ErrUnauthenticated if the other node does not prove the secret),
// all within DialTimeout and ctx.
func (m *Mux) Dial(ctx context.Context, address string, kind ConnKind, group uint32) (net.Conn, error) {
	if m.opts.Listener == nil {
		return nil, fmt.Errorf("dial %s: %w", address, ErrNoListener)
	}
	ctx, cancel := context.WithTimeout(ctx, m.opts.DialTimeout)
	defer cancel()
	var c net.Conn
	var err error
	if m.opts.TLS != nil {
		d := tls.Dialer{Config: m.opts.TLS}
		c, err = d.DialContext(ctx, "tcp", address)
	} else {
		var d net.Dialer
		c, err = d.DialContext(ctx, "tcp", address)
	}
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", address, err)
	}
	dl, _ := ctx.Deadline()
	c.SetDeadline(dl)
	if m.key != nil {
		err = clientHandshake(c, m.key, kind, group)
	} else {
		_, err = c.Write(appendMuxHeader(nil, muxVersionNoKey, kind, group))
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("dial %s: %w", address, err)
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// DialID is Dial to the replica with Raft server ID id, at the address
// Resolve gives for it or else at fallback (the group's view).
func (m *Mux) DialID(ctx context.Context, id, fallback string, kind ConnKind, group uint32) (net.Conn, error) {
	return m.Dial(ctx, m.resolve(id, fallback), kind, group)
}

func (m *Mux) resolve(id, fallback string) string {
	if m.opts.Resolve != nil {
		if a := m.opts.Resolve(id); a != "" {
			return a
		}
	}
	return fallback
}

// TransportOptions configure the Raft transport of one group on a Mux.
type TransportOptions struct {
	// Timeout is the I/O deadline of a Raft RPC (raft scales it for
	// snapshots). Zero means 10s.
	Timeout time.Duration
	// MaxPool is the number of idle connections kept per peer. Zero
	// means 3.
	MaxPool int
	Logger  *slog.Logger // nil means discard
}

func (o TransportOptions) withDefaults() TransportOptions {
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.MaxPool == 0 {
		o.MaxPool = 3
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Transport returns a Raft transport for group carried by the Mux. The
// caller hands it to Open (Options.Transport); closing it (raft does at
// Shutdown) unregisters the group. A group may have one transport at a
// time.
func (m *Mux) Transport(group uint32, opts TransportOptions) (*raft.NetworkTransport, error) {
	if opts.Timeout < 0 || opts.MaxPool < 0 {
		return nil, fmt.Errorf("transport for group %d: Timeout and MaxPool must not be negative", group)
	}
	opts = opts.withDefaults()
	l := &streamLayer{m: m, group: group, conns: make(chan net.Conn), done: make(chan struct{})}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.closed {
		return nil, fmt.Errorf("transport for group %d: %w", group, ErrClosed)
	}
	if m.mu.groups[group] != nil {
		return nil, fmt.Errorf("transport for group %d: group already has one", group)
	}
	m.mu.groups[group] = l
	var provider raft.ServerAddressProvider
	if m.opts.Resolve != nil {
		provider = resolver{m.opts.Resolve}
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		ServerAddressProvider: provider,
		Logger:                newHCLogger(opts.Logger, m.Stopping),
		Stream:                l,
		MaxPool:               opts.MaxPool,
		Timeout:               opts.Timeout,
	}), nil
}

// resolver is raft's ServerAddressProvider over MuxOptions.Resolve.
type resolver struct{ f func(string) string }

func (r resolver) ServerAddr(id raft.ServerID) (raft.ServerAddress, error) {
	if a := r.f(string(id)); a != "" {
		return raft.ServerAddress(a), nil
	}
	return "", fmt.Errorf("no address for %s", id)
}

// HTTPListener returns the listener of the KindHTTP connections (HTTP
// requests forwarded by other nodes). Closing it stops the routing.
func (m *Mux) HTTPListener() net.Listener {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.http == nil {
		m.mu.http = &kindListener{m: m, conns: make(chan net.Conn), done: make(chan struct{})}
	}
	return m.mu.http
}

// Close stops accepting, closes the listener and the connections whose
// header is not yet read, and waits for the Mux's goroutines. Transports
// are closed by their groups. Idempotent.
func (m *Mux) Close() error {
	m.closeOnce.Do(func() {
		m.stopping.Store(true)
		m.mu.Lock()
		m.mu.closed = true
		for c := range m.mu.conns {
			c.Close()
		}
		m.mu.Unlock()
		close(m.done)
		var err error
		if m.opts.Listener != nil {
			err = m.opts.Listener.Close()
		}
		m.wg.Wait()
		if err != nil && !errors.Is(err, net.ErrClosed) {
			m.closeErr = fmt.Errorf("close raft listener: %w", err)
		}
	})
	return m.closeErr
}

// streamLayer is raft.StreamLayer for one group on a Mux.
type streamLayer struct {
	m         *Mux
	group     uint32
	conns     chan net.Conn // routed by the Mux
	done      chan struct{} // closed by Close
	closeOnce sync.Once
}

var _ raft.StreamLayer = (*streamLayer)(nil)

func (l *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-l.m.done:
		return nil, net.ErrClosed
	}
}

func (l *streamLayer) Close() error {
	l.closeOnce.Do(func() {
		close(l.done)
		l.m.mu.Lock()
		if l.m.mu.groups[l.group] == l {
			delete(l.m.mu.groups, l.group)
		}
		l.m.mu.Unlock()
	})
	return nil
}

func (l *streamLayer) Addr() net.Addr { return l.m.addr }

func (l *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return l.m.Dial(ctx, string(address), KindRaft, l.group)
}

// kindListener is a net.Listener of the connections of one kind.
type kindListener struct {
	m         *Mux
	conns     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

func (l *kindListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-l.m.done:
		return nil, net.ErrClosed
	}
}

func (l *kindListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

func (l *kindListener) Addr() net.Addr { return l.m.addr }

type muxAddr string

func (a muxAddr) Network() string { return "tcp" }
func (a muxAddr) String() string  { return string(a) }
