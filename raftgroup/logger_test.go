package raftgroup

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// TestLoggerLevels: raft's lines of normal operation are lowered to INFO,
// the same lines in a failure and raft's other warnings keep their level.
func TestLoggerLevels(t *testing.T) {
	for _, tc := range []struct {
		msg     string
		args    []any
		closing bool
		want    string
	}{
		{msg: "heartbeat timeout reached, starting election", args: []any{"last-leader-addr", "", "last-leader-id", ""}, want: "INFO"},
		{msg: "heartbeat timeout reached, starting election", args: []any{"last-leader-addr", "a:1", "last-leader-id", "2"}, want: "WARN"},
		{msg: "rejecting vote request since our last term is greater", want: "INFO"},
		{msg: "rejecting pre-vote request since our last index is greater", want: "INFO"},
		{msg: "rejecting pre-vote request since we have a leader", want: "INFO"},
		{msg: "rejecting vote request since node is not in configuration", want: "WARN"},
		{msg: "rejecting pre-vote request since node is not a voter", want: "WARN"},
		{msg: "failed to contact", want: "WARN"},
		{msg: "failed to contact", closing: true, want: "INFO"},
	} {
		var buf bytes.Buffer
		l := newHCLogger(slog.New(slog.NewTextHandler(&buf, nil)), func() bool { return tc.closing })
		l.Warn(tc.msg, tc.args...)
		if got := buf.String(); !strings.Contains(got, "level="+tc.want) {
			t.Errorf("%q (closing %v): logged %q, want level %s", tc.msg, tc.closing, got, tc.want)
		}
	}
}

// TestConfigPending: Checkpoint recognises raft's refusal to snapshot
// before a configuration entry is applied (hashicorp/raft snapshot.go's
// text, which has no sentinel), and nothing else.
func TestConfigPending(t *testing.T) {
	refusal := fmt.Errorf("cannot take snapshot now, wait until the configuration entry at %v has been applied (have applied %v)", 6, 5)
	if !configPending(refusal) || !configPending(fmt.Errorf("snapshot: %w", refusal)) {
		t.Errorf("raft's refusal not recognised: %v", refusal)
	}
	if configPending(errors.New("nothing new to snapshot")) {
		t.Error("another error taken for the refusal")
	}
}
