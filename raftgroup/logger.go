package raftgroup

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// hcLogger is hashicorp/raft's logger (hclog.Logger) over the node's
// slog.Logger: raft's messages become slog records with their own level,
// message and key-value pairs, so a node writes one log format with one
// timestamp (the rejected alternative, hclog writing text into a slog
// message, put a second timestamp and level inside every msg).
//
// Raft logs some steps of normal operation as warnings or errors: a
// replica's first election, a new follower's empty log, the connections
// to peers that stop at a cluster's shutdown. expectedLevel lowers those,
// so a normal start and stop of a node logs no WARN or ERROR line, while
// the same message in a failure keeps its level where the difference is
// visible (see expectedLevel).
type hcLogger struct {
	l     *slog.Logger
	name  string
	args  []any
	level hclog.Level
	// closing reports whether the group is shutting down: connection
	// errors to peers are then expected. Nil means never.
	closing func() bool
	// logDown reports whether the replica's log cannot be written or the
	// disk is full: the election cycle and the failing snapshots are
	// then expected (the log store and the disk guard log the outage
	// themselves). Nil means never.
	logDown func() bool
}

var _ hclog.Logger = (*hcLogger)(nil)

// newHCLogger returns raft's logger writing to l under the name "raft".
func newHCLogger(l *slog.Logger, closing func() bool) hclog.Logger {
	return newGroupLogger(l, closing, nil)
}

// newGroupLogger is newHCLogger for a replica, which also quiets the
// lines a log that cannot be written repeats while logDown says so.
func newGroupLogger(l *slog.Logger, closing, logDown func() bool) hclog.Logger {
	return &hcLogger{l: l, name: "raft", level: hclog.Info, closing: closing, logDown: logDown}
}

func (h *hcLogger) Log(level hclog.Level, msg string, args ...any) {
	if level < h.level || level == hclog.Off {
		return
	}
	lvl := expectedLevel(slogLevel(level), msg, args, h.closing != nil && h.closing())
	if h.logDown != nil && lvl >= slog.LevelInfo && h.logDown() && logDownMessage(msg) {
		lvl = slog.LevelDebug
	}
	ctx := context.Background()
	if !h.l.Enabled(ctx, lvl) {
		return
	}
	attrs := make([]any, 0, len(h.args)+len(args)+2)
	attrs = append(attrs, "component", h.name)
	attrs = append(attrs, h.args...)
	for _, a := range args {
		// hclog.Fmt values are printf formats with their arguments
		// (raft logs its configurations that way).
		if f, ok := a.(hclog.Format); ok && len(f) > 0 {
			if format, ok := f[0].(string); ok {
				a = fmt.Sprintf(format, f[1:]...)
			}
		}
		attrs = append(attrs, a)
	}
	h.l.Log(ctx, lvl, msg, attrs...)
}

func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace, hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	}
	return slog.LevelInfo
}

// expectedLevel lowers the level of raft messages that normal operation
// produces (found by starting and stopping single nodes and clusters and
// reading every WARN and ERROR line):
//
//   - "heartbeat timeout reached, starting election" with no last leader:
//     a replica's first election after start. With a last leader it is a
//     lost leader and stays a warning.
//   - "failed to get previous log" and "appendEntries rejected, sending
//     older logs": a follower that is new or restarted is behind; raft
//     sends it the older entries. A real log problem shows as an error
//     elsewhere.
//   - "failed to contact", "failed to appendEntries to", "failed to
//     heartbeat to", "failed to make requestVote RPC", "failed to
//     decode incoming command" and "failed to accept connection" while
//     the group is closing: peers stopping with it.
//   - "skipping application of old log": replay of entries the applier
//     already holds (NoSnapshotRestoreOnStart).
//   - "no known peers, aborting election": a replica opened to join its
//     group waits for the leader to add it.
//   - "rejecting (pre-)vote request since our last term is greater",
//     "... our last index is greater" and "... we have a leader": a voter
//     correctly refusing a candidate whose log is behind, or one that lost
//     touch with a leader the others still hear (concurrent elections at
//     start, a node back from a pause). The candidate's side shows as its
//     own lines; a voter outside the configuration or not a voter still
//     warns.
func expectedLevel(l slog.Level, msg string, args []any, closing bool) slog.Level {
	if l < slog.LevelWarn {
		return l
	}
	switch {
	case strings.HasPrefix(msg, "heartbeat timeout reached, starting election"):
		if argString(args, "last-leader-id") == "" && argString(args, "last-leader-addr") == "" {
			return slog.LevelInfo
		}
	case strings.HasPrefix(msg, "failed to get previous log"),
		strings.HasPrefix(msg, "no known peers, aborting election"),
		strings.HasPrefix(msg, "appendEntries rejected, sending older logs"),
		strings.HasPrefix(msg, "skipping application of old log"),
		votingRefusal(msg):
		return slog.LevelInfo
	case closing && (strings.HasPrefix(msg, "failed to contact") ||
		strings.HasPrefix(msg, "failed to appendEntries to") ||
		strings.HasPrefix(msg, "failed to heartbeat to") ||
		strings.HasPrefix(msg, "failed to make requestVote RPC") ||
		strings.HasPrefix(msg, "failed to decode incoming command") ||
		strings.HasPrefix(msg, "failed to accept connection") ||
		strings.HasPrefix(msg, "failed to send snapshot to")):
		return slog.LevelInfo
	}
	return l
}

// votingRefusal reports whether msg is raft's refusal of a vote or
// pre-vote for a candidate that is behind or when a leader is known.
func votingRefusal(msg string) bool {
	for _, p := range []string{"rejecting vote request since ", "rejecting pre-vote request since "} {
		if rest, ok := strings.CutPrefix(msg, p); ok {
			return rest == "our last term is greater" || rest == "our last index is greater" || rest == "we have a leader"
		}
	}
	return false
}

// logDownMessage reports whether msg is one of the lines a replica whose
// log cannot be written repeats: a leader's append fails, it steps down,
// a single replica elects itself again and fails again, several times a
// second while the disk is full (44,000 lines in 4 minutes before the
// log store logged the outage once instead).
func logDownMessage(msg string) bool {
	for _, p := range []string{
		"failed to commit logs", "failed to append to logs", "failed to compact logs",
		"entering follower state", "entering candidate state", "entering leader state",
		"election won", "pre-vote successful", "heartbeat timeout reached",
		"creating new snapshot", "failed to take snapshot", // raft retries every few seconds
	} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// argString returns the value of key in hclog's alternating key-value
// args as a string, "" if absent.
func argString(args []any, key string) string {
	for i := 0; i+1 < len(args); i += 2 {
		if k, _ := args[i].(string); k == key {
			switch v := args[i+1].(type) {
			case string:
				return v
			case interface{ String() string }:
				return v.String()
			}
		}
	}
	return ""
}

func (h *hcLogger) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *hcLogger) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *hcLogger) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *hcLogger) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *hcLogger) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *hcLogger) IsTrace() bool { return h.enabled(hclog.Trace) }
func (h *hcLogger) IsDebug() bool { return h.enabled(hclog.Debug) }
func (h *hcLogger) IsInfo() bool  { return h.enabled(hclog.Info) }
func (h *hcLogger) IsWarn() bool  { return h.enabled(hclog.Warn) }
func (h *hcLogger) IsError() bool { return h.enabled(hclog.Error) }

func (h *hcLogger) enabled(l hclog.Level) bool {
	return l >= h.level && h.l.Enabled(context.Background(), slogLevel(l))
}

func (h *hcLogger) ImpliedArgs() []any { return h.args }

func (h *hcLogger) With(args ...any) hclog.Logger {
	c := *h
	c.args = append(append([]any(nil), h.args...), args...)
	return &c
}

func (h *hcLogger) Name() string { return h.name }

func (h *hcLogger) Named(name string) hclog.Logger {
	c := *h
	c.name = h.name + "." + name
	return &c
}

func (h *hcLogger) ResetNamed(name string) hclog.Logger {
	c := *h
	c.name = name
	return &c
}

// SetLevel is ignored: the level is the slog handler's. hclog's loggers
// may call it on a shared logger; changing ours would change every
// group's.
func (h *hcLogger) SetLevel(hclog.Level) {}

func (h *hcLogger) GetLevel() hclog.Level { return h.level }

func (h *hcLogger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(h.StandardWriter(opts), "", 0)
}

func (h *hcLogger) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return stdWriter{h}
}

// stdWriter is the io.Writer of StandardLogger: a line logged at INFO
// unless it names a level in hclog's "[LEVEL]" style.
type stdWriter struct{ h *hcLogger }

func (w stdWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := hclog.Info
	for _, l := range []struct {
		tag   string
		level hclog.Level
	}{{"[ERROR]", hclog.Error}, {"[ERR]", hclog.Error}, {"[WARN]", hclog.Warn}, {"[DEBUG]", hclog.Debug}, {"[TRACE]", hclog.Trace}} {
		if i := strings.Index(msg, l.tag); i >= 0 {
			level = l.level
			msg = strings.TrimSpace(msg[i+len(l.tag):])
			break
		}
	}
	w.h.Log(level, msg)
	return len(p), nil
}
