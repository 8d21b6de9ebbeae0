package ring

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden files in testdata")

// goldenState is a fixed cluster: three nodes join, a fourth joins and
// is drained, then a node dies.
func goldenState(t testing.TB) *State {
	s := mustState(t, Options{})
	for i, n := range []string{"a", "b", "c", "d"} {
		run(t, s, Event{Kind: EventJoin, Node: NodeID(n), Addr: "10.0.0." + n + ":7946", AtMillis: 1_700_000_000_000 + int64(i)*60_000})
	}
	run(t, s, Event{Kind: EventDrain, Node: "d", AtMillis: 1_700_000_300_000})
	run(t, s, Event{Kind: EventDead, Node: "c", AtMillis: 1_700_000_400_000})
	return s
}

func TestStateGolden(t *testing.T) {
	s := goldenState(t)
	got := AppendState(nil, s)
	path := filepath.Join("testdata", "state.golden")
	text := hex.Dump(got)
	if *rewrite {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -rewrite to create it)", err)
	}
	if text != string(want) {
		t.Errorf("encoding changed (format change: bump StateVersion, update doc.go, rewrite):\n%s\nwant:\n%s", text, want)
	}
	checkEncoding(t, s)
}

// checkEncoding checks that s round-trips and encodes deterministically.
func checkEncoding(t testing.TB, s *State) {
	t.Helper()
	enc := AppendState(nil, s)
	dec, err := DecodeState(enc)
	if err != nil {
		t.Fatalf("decode an encoded state: %v", err)
	}
	if !dec.Equal(s) {
		t.Fatalf("state changed in a round trip")
	}
	if again := AppendState(nil, dec); !bytes.Equal(enc, again) {
		t.Fatalf("encoding is not deterministic")
	}
	if !dec.Clone().Equal(s) {
		t.Fatalf("clone differs")
	}
}

func TestDecodeStateCorrupt(t *testing.T) {
	enc := AppendState(nil, goldenState(t))
	// Every truncation and every single-byte change must fail cleanly or
	// decode to a valid state; never panic.
	for i := range enc {
		if _, err := DecodeState(enc[:i]); !errors.Is(err, ErrInvalidState) {
			t.Fatalf("truncated at %d: %v, want ErrInvalidState", i, err)
		}
		for _, b := range []byte{0, 1, 0x7f, 0x80, 0xff} {
			c := bytes.Clone(enc)
			c[i] = b
			if s, err := DecodeState(c); err == nil {
				if err := s.Validate(); err != nil {
					t.Fatalf("byte %d = %#x: decoded an invalid state: %v", i, b, err)
				}
			} else if !errors.Is(err, ErrInvalidState) {
				t.Fatalf("byte %d = %#x: %v, want ErrInvalidState", i, b, err)
			}
		}
	}
	for _, tc := range []struct {
		name string
		in   string
		want string
	}{
		{"empty", "", "bad magic"},
		{"version", "myrg\x02", "unknown version 2"},
		{"trailing", string(enc) + "x", "trailing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeState([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("DecodeState = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestStepRoundTrip(t *testing.T) {
	for _, st := range []Step{
		{Kind: StepAddNode, Node: "a", Addr: "10.0.0.1:7946"},
		{Kind: StepSetNodeState, Node: "a", State: NodeDead},
		{Kind: StepCreateGroup, Group: 1 << 31, Node: "b", AtMillis: -5},
		{Kind: StepTransferLeader, Group: 3, Node: "c"},
		{Kind: StepSetNodeAddr, Node: "c", Addr: "10.0.0.9:9095"},
	} {
		t.Run(st.String(), func(t *testing.T) {
			enc := AppendStep(nil, st)
			got, err := DecodeStep(enc)
			if err != nil || got != st {
				t.Fatalf("DecodeStep = %+v, %v; want %+v", got, err, st)
			}
			for i := range enc {
				if _, err := DecodeStep(enc[:i]); !errors.Is(err, ErrInvalidState) {
					t.Fatalf("truncated at %d: %v", i, err)
				}
			}
		})
	}
}
