package raftgroup

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
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
//
// The disk (raft-wal only): segments are 64 KiB, the disk guard's minimum
// is 64 MiB and it reads what "free" set (1 GiB at first).
//
//	free <MiB>              set the free space and let the guard read it: "accepting" or "refusing"
//	fs full|ok|eio          raft-wal's files: full (preallocation and growing writes fail with ENOSPC), ok, or every write fails (EIO)
//	fill <bytes> <max>      propose entries of <bytes> until one fails, at most max: whether some were accepted, and the error
//	write <batch>...        propose without printing the index (it depends on timing after a fill)
//	acked                   every acknowledged proposal is in the applier's state, at its index
//	writable                Group.Writable
//	read                    Group.VerifyRead
//	await-writes            propose "await" until it is accepted (the log reopened), at most 10 s,
//	                        the guard reading the free space a minute later each time
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
		vfs   = newFaultVFS()
		acked = map[uint64]string{}
		free  atomic.Uint64
		clock atomic.Int64 // unix seconds of the guard's clock
	)
	clock.Store(1700000000)
	free.Store(1 << 30)
	guard, err := NewDiskGuard(DiskGuardOptions{
		Dirs:         []string{dir},
		MinFreeBytes: 64 << 20,
		Interval:     time.Minute,
		FreeBytes:    func(string) (uint64, error) { return free.Load(), nil },
		Now:          func() time.Time { return time.Unix(clock.Load(), 0) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer guard.Close()
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
		opts := testOptions(filepath.Join(dir, "raft"), a, store)
		opts.Disk, opts.walVFS, opts.walRetry = guard, vfs, 5*time.Millisecond
		opts.WALSegmentBytes = 64 << 10
		g, err = Open(opts)
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
				if err == nil {
					acked[idx] = b
				}
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
		case "free":
			mib, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			free.Store(mib << 20)
			clock.Add(60)
			if err := guard.Refresh(); err != nil {
				t.Fatal(err)
			}
			if guard.Err() != nil {
				got = append(got, "refusing")
			} else {
				got = append(got, "accepting")
			}
		case "fs":
			vfs.full.Store(f[1] == "full")
			vfs.failWrites.Store(f[1] == "eio")
			got = append(got, "ok")
		case "fill":
			size, err1 := strconv.Atoi(f[1])
			most, err2 := strconv.Atoi(f[2])
			if err := errors.Join(err1, err2); err != nil {
				t.Fatal(err)
			}
			n := 0
			for ; n < most; n++ {
				b := fmt.Sprintf("fill%d-%s", n, strings.Repeat("x", size))
				var idx uint64
				if idx, _, err = g.Propose(context.Background(), []byte(b)); err != nil {
					break
				}
				acked[idx] = b
			}
			switch {
			case n == most:
				got = append(got, "all accepted")
			case n > 0:
				got = append(got, "some accepted, then error: "+errName(err))
			default:
				got = append(got, "error: "+errName(err))
			}
		case "write":
			for _, b := range f[1:] {
				idx, _, err := g.Propose(context.Background(), []byte(b))
				if err == nil {
					acked[idx] = b
				}
				got = append(got, b+": "+okOrErr(err))
			}
		case "acked":
			applied := map[uint64]string{}
			for _, e := range a.state().Entries {
				applied[e.Index] = e.Batch
			}
			res := "ok"
			for idx, b := range acked {
				if applied[idx] != b {
					res = fmt.Sprintf("entry %d %.10q acknowledged, applied %.10q", idx, b, applied[idx])
					break
				}
			}
			got = append(got, res)
		case "writable":
			got = append(got, okOrErr(g.Writable()))
		case "read":
			got = append(got, okOrErr(g.VerifyRead(t.Context())))
		case "await-writes":
			deadline := time.Now().Add(10 * time.Second)
			for {
				// The guard's loop would read the free space again by
				// now: a write that failed just before the space came
				// back reported ENOSPC late.
				clock.Add(60)
				if err := guard.Refresh(); err != nil {
					t.Fatal(err)
				}
				idx, _, err := g.Propose(context.Background(), []byte("await"))
				if err == nil {
					acked[idx] = "await"
					got = append(got, "ok")
					break
				}
				if time.Now().After(deadline) {
					got = append(got, "error: "+errName(err))
					break
				}
				time.Sleep(5 * time.Millisecond) // raft re-elects, the log reopens: real goroutines
			}
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
		{ErrDiskFull, "ErrDiskFull"},
		{ErrLogFailed, "ErrLogFailed"},
	} {
		if errors.Is(err, s.err) {
			return s.name
		}
	}
	return err.Error()
}
