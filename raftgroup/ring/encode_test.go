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
	if err := s.Apply(Step{Kind: StepStartGroup, Group: 1}); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestDecodeStateV1: a state written in version 1 (before groups had a
// Starter and the state its removed nodes) still decodes: the same state
// without them.
func TestDecodeStateV1(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "state-v1.golden"))
	if err != nil {
		t.Fatal(err)
	}
	enc := undump(t, string(b))
	got, err := DecodeState(enc)
	if err != nil {
		t.Fatal(err)
	}
	want := goldenState(t)
	want.Generation--  // the StepStartGroup above
	want.Removed = nil // version 1 had no removed nodes
	for i := range want.Groups {
		want.Groups[i].Starter = ""
	}
	if !got.Equal(want) {
		t.Fatalf("version 1 state decodes to %+v, want %+v", got, want)
	}
}

// undump reads hex.Dump's output back into bytes.
func undump(t testing.TB, dump string) []byte {
	t.Helper()
	var out []byte
	for _, line := range strings.Split(dump, "\n") {
		if len(line) < 10 {
			continue
		}
		hexPart := line[10:]
		if i := strings.Index(hexPart, "|"); i >= 0 {
			hexPart = hexPart[:i]
		}
		b, err := hex.DecodeString(strings.ReplaceAll(hexPart, " ", ""))
		if err != nil {
			t.Fatalf("undump %q: %v", line, err)
		}
		out = append(out, b...)
	}
	return out
}

func TestStateGolden(t *testing.T) {
	s := goldenState(t)
	started, pending := 0, 0
	for _, g := range s.Groups {
		if g.Starter == "" {
			started++
		} else {
			pending++
		}
	}
	if len(s.Removed) == 0 || started == 0 || pending == 0 {
		t.Fatalf("the golden state should hold removed nodes (%v) and started (%d) and pending (%d) groups", s.Removed, started, pending)
	}
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
		{"version", "myrg\x03", "unknown version 3"},
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
