package ring

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestScripts runs the command scripts in testdata/*.txt against a
// cluster State. Each case is a command line, "----", and the expected
// output up to a blank line (-rewrite writes the actual output).
// Commands:
//
//	new [rf=N] [groups=N]       a new state (Options)
//	join|drain|dead NODE [at=MS] plan the event, apply it, print the steps
//	reconcile [at=MS]           plan with no event
//	show                        nodes, groups, and each group's share of the ring
//	owners MINT MAXT [future=MS] [late=MS] [stale=MS]   State.Owners
//
// After every plan the placement rules are checked (checkPlaced).
func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) { runScript(t, file) })
	}
}

func runScript(t *testing.T, file string) {
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var s *State
	var out strings.Builder
	lines := strings.Split(string(src), "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		if line == "" || strings.HasPrefix(line, "#") {
			out.WriteString(lines[i] + "\n")
			continue
		}
		if i+1 >= len(lines) || lines[i+1] != "----" {
			t.Fatalf("%s:%d: %q is not followed by ----", file, i+1, line)
		}
		start := i
		i += 2
		var want []string
		for ; i < len(lines) && lines[i] != ""; i++ {
			want = append(want, lines[i])
		}
		i-- // the blank line is copied by the loop
		got := strings.TrimRight(runCommand(t, &s, line), "\n")
		if got == "" {
			got = "ok"
		}
		if !*rewrite && got != strings.Join(want, "\n") {
			t.Errorf("%s:%d: %s\ngot:\n%s\nwant:\n%s", file, start+1, line, got, strings.Join(want, "\n"))
		}
		fmt.Fprintf(&out, "%s\n----\n%s\n", line, got)
	}
	if *rewrite {
		if err := os.WriteFile(file, []byte(strings.TrimRight(out.String(), "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func runCommand(t *testing.T, sp **State, line string) string {
	t.Helper()
	fields := strings.Fields(line)
	args := map[string]int64{}
	var pos []string
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			pos = append(pos, f)
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		args[k] = n
	}
	s := *sp
	var b strings.Builder
	switch fields[0] {
	case "new":
		var err error
		*sp, err = NewState(Options{ReplicationFactor: int(args["rf"]), GroupsPerNode: int(args["groups"])})
		if err != nil {
			return "error: " + err.Error()
		}
	case "join", "drain", "dead", "reconcile":
		ev := Event{Kind: map[string]EventKind{"join": EventJoin, "drain": EventDrain, "dead": EventDead}[fields[0]], AtMillis: args["at"]}
		if len(pos) > 0 {
			ev.Node, ev.Addr = NodeID(pos[0]), pos[0]+":7946"
		}
		steps, err := Plan(s, ev)
		if err != nil {
			return "error: " + err.Error()
		}
		for _, st := range steps {
			if err := s.Apply(st); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			fmt.Fprintln(&b, st)
		}
		checkPlaced(t, s)
		checkEncoding(t, s)
	case "show":
		for _, n := range s.Nodes {
			var held, leads []string
			for _, g := range s.Groups {
				for _, r := range g.Replicas {
					if r == n.ID {
						held = append(held, fmt.Sprint(g.ID))
					}
				}
				if g.Leader == n.ID {
					leads = append(leads, fmt.Sprint(g.ID))
				}
			}
			fmt.Fprintf(&b, "node %s %s replicas [%s] leads [%s]\n", n.ID, n.State, strings.Join(held, " "), strings.Join(leads, " "))
		}
		if r := s.Ring(); r != nil {
			own := r.Ownership()
			for i, g := range r.Groups() {
				fmt.Fprintf(&b, "group %d owns %.2f%%\n", g, 100*float64(own[i])/float64(^uint64(0)))
			}
			fmt.Fprintf(&b, "generation %d, %d epochs, %d tokens\n", s.Generation, len(s.Epochs), len(r.Tokens()))
		}
	case "owners":
		mint, _ := strconv.ParseInt(pos[0], 10, 64)
		maxt, _ := strconv.ParseInt(pos[1], 10, 64)
		fmt.Fprint(&b, s.Owners(mint, maxt, Window{FutureMillis: args["future"], LateMillis: args["late"], StaleMillis: args["stale"]}))
	default:
		t.Fatalf("unknown command %q", line)
	}
	return b.String()
}
