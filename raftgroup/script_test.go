package raftgroup

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var rewrite = flag.Bool("rewrite", false, "rewrite testdata/*.txt with the actual output")

// TestScripts runs the command scripts in testdata/ against a one-replica
// group with the chainApplier. Each case is a command line, "----", and
// the expected output up to a blank line. Commands:
//
//	open [store=raft-wal|pebble] [applier=fresh]   open and wait to lead
//	propose <batch>...      one Propose per batch: "<index> <batch>[: error]"
//	checkpoint              Group.Checkpoint
//	restart                 close, reopen the applier from its file, open
//	stats                   entries replayed and skipped since open, log range
//	state                   the applier's index, entry count and hash
//	fail-next               the applier fails the next entry (ErrApplierFailed)
//	close                   Group.Close
func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) { runScript(t, file) })
	}
}

type scriptCase struct {
	cmd, want string
}

func parseScript(t *testing.T, src string) []scriptCase {
	var cases []scriptCase
	lines := strings.Split(src, "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i+1 >= len(lines) || lines[i+1] != "----" {
			t.Fatalf("line %d: %q is not followed by ----", i+1, line)
		}
		i += 2
		var want []string
		for ; i < len(lines) && lines[i] != ""; i++ {
			want = append(want, lines[i])
		}
		cases = append(cases, scriptCase{cmd: line, want: strings.Join(want, "\n")})
	}
	return cases
}

func runScript(t *testing.T, file string) {
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	appPath := filepath.Join(dir, "applier.json")
	var (
		g     *Group
		a     *chainApplier
		store LogStore
	)
	defer func() {
		if g != nil {
			g.Close()
		}
	}()
	open := func(fresh bool) string {
		a = openChain(t, appPath)
		if fresh {
			a = &chainApplier{path: appPath}
		}
		var err error
		g, err = Open(testOptions(filepath.Join(dir, "raft"), a, store))
		if err == nil {
			err = g.WaitLeader(t.Context())
		}
		if err != nil {
			g = nil
			return "error: " + errName(err)
		}
		return "ok"
	}
	var out strings.Builder
	for _, c := range parseScript(t, string(src)) {
		f := strings.Fields(c.cmd)
		var got []string
		switch f[0] {
		case "open":
			fresh := false
			for _, arg := range f[1:] {
				switch arg {
				case "store=raft-wal", "store=pebble":
					store = LogStore(strings.TrimPrefix(arg, "store="))
				case "applier=fresh":
					fresh = true
				default:
					t.Fatalf("%s: unknown argument %q", c.cmd, arg)
				}
			}
			got = append(got, open(fresh))
		case "propose":
			for _, b := range f[1:] {
				idx, outcome, err := g.Propose(context.Background(), []byte(b))
				line := fmt.Sprintf("%d %s", idx, b)
				if err != nil {
					line += ": " + errName(err)
				}
				if outcome != nil {
					line += ": outcome " + string(outcome)
				}
				got = append(got, line)
			}
		case "checkpoint":
			got = append(got, okOrErr(g.Checkpoint()))
		case "close":
			got = append(got, okOrErr(g.Close()))
			g = nil
		case "restart":
			if err := g.Close(); err != nil {
				t.Fatal(err)
			}
			got = append(got, open(false))
		case "stats":
			st := g.Stats()
			got = append(got, fmt.Sprintf("replayed %d skipped %d log [%d, %d]", st.Replayed, st.Skipped, st.FirstIndex, st.LastIndex))
		case "state":
			st := a.state()
			got = append(got, fmt.Sprintf("index %d entries %d hash %x", st.Index, len(st.Entries), st.Hash[:4]))
		case "fail-next":
			a.failAt = g.Stats().LastIndex + 1
			got = append(got, "ok")
		default:
			t.Fatalf("unknown command %q", c.cmd)
		}
		res := strings.Join(got, "\n")
		if !*rewrite && res != c.want {
			t.Errorf("%s: %s\ngot:\n%s\nwant:\n%s", file, c.cmd, res, c.want)
		}
		fmt.Fprintf(&out, "%s\n----\n%s\n\n", c.cmd, res)
	}
	if *rewrite {
		// Comments are not kept: scripts start with a comment block that
		// is carried over verbatim.
		var head strings.Builder
		for _, l := range strings.Split(string(src), "\n") {
			if !strings.HasPrefix(l, "#") {
				break
			}
			head.WriteString(l + "\n")
		}
		if err := os.WriteFile(file, []byte(head.String()+"\n"+strings.TrimRight(out.String(), "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func okOrErr(err error) string {
	if err != nil {
		return "error: " + errName(err)
	}
	return "ok"
}

// errName names an error by the sentinel it wraps, so scripts do not
// depend on paths and wrapping.
func errName(err error) string {
	for _, s := range []struct {
		err  error
		name string
	}{
		{ErrApplierBehind, "ErrApplierBehind"},
		{ErrApplierFailed, "ErrApplierFailed"},
		{ErrNotLeader, "ErrNotLeader"},
		{ErrClosed, "ErrClosed"},
	} {
		if errors.Is(err, s.err) {
			return s.name
		}
	}
	return err.Error()
}
