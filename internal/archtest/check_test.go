package archtest

import (
	"strings"
	"testing"
)

// TestCheck runs the rules on made-up module graphs, so we know each rule
// fires (TestDependencyRules only shows that today's tree is clean).
func TestCheck(t *testing.T) {
	const mod = "example.com/m"
	std := []pkg{{ImportPath: "fmt", Standard: true}, {ImportPath: "io", Standard: true}}
	p := func(rel string, imports ...string) pkg {
		var full []string
		for _, imp := range imports {
			if !strings.Contains(imp, ".") && imp != "fmt" && imp != "io" { // a module package
				imp = mod + "/" + imp
			}
			full = append(full, imp)
		}
		path := mod + "/" + rel
		return pkg{ImportPath: path, Name: rel[strings.LastIndex(rel, "/")+1:], Imports: full}
	}
	for _, tc := range []struct {
		name string
		pkgs []pkg
		want []string // one substring per expected message, in order
	}{
		{
			name: "clean tree",
			pkgs: append(std,
				p("cmd/myelin", "server", "raftgroup", "engine", "internal/tsdata", "fmt"),
				p("server", "server/distributor", "server/querier", "raftgroup/ring", "engine", "write", "github.com/prometheus/prometheus/promql"),
				p("server/distributor", "raftgroup"),
				p("server/querier", "engine"),
				p("raftgroup", "raftgroup/ring", "github.com/hashicorp/raft"),
				p("raftgroup/ring"),
				p("engine", "chunkenc", "write", "engine/internal/keys", "github.com/cockroachdb/pebble/v2"),
				p("engine/internal/keys", "io"),
				p("chunkenc", "chunkenc/internal/bits", "internal/invariants", "fmt"),
				p("chunkenc/internal/bits"),
				p("write", "internal/invariants", "github.com/klauspost/compress/s2", "github.com/prometheus/prometheus/model/labels", "fmt"),
				p("internal/invariants"),
				p("internal/tsdata", "fmt"),
				p("bench", "chunkenc", "engine", "internal/tsdata", "bench/internal/gen"),
				p("bench/internal/gen"),
				p("fuzz", "chunkenc"),
			),
		},
		{
			name: "engine imports server",
			pkgs: []pkg{p("engine", "server"), p("server")},
			want: []string{"engine imports server (via engine → server): engine must not import server"},
		},
		{
			name: "engine imports raftgroup through an internal package",
			pkgs: []pkg{p("engine", "internal/glue"), p("internal/glue", "raftgroup/ring"), p("raftgroup/ring")},
			want: []string{"engine imports raftgroup/ring (via engine → internal/glue → raftgroup/ring): engine must not import raftgroup"},
		},
		{
			name: "raftgroup imports engine",
			pkgs: []pkg{p("raftgroup", "engine"), p("engine")},
			want: []string{"raftgroup imports engine (via raftgroup → engine): raftgroup must not import engine"},
		},
		{
			name: "server imports cmd",
			pkgs: []pkg{p("server", "cmd/myelin"), p("cmd/myelin")},
			want: []string{
				"server imports cmd/myelin: nothing may import cmd/",
				"server imports cmd/myelin (via server → cmd/myelin): server must not import cmd",
			},
		},
		{
			name: "chunkenc imports engine",
			pkgs: []pkg{p("chunkenc/xor", "engine"), p("engine", "github.com/cockroachdb/pebble/v2")},
			want: []string{"chunkenc/xor imports engine (via chunkenc/xor → engine): chunkenc must not import engine"},
		},
		{
			name: "chunkenc imports a third-party module",
			pkgs: append(std, p("chunkenc", "fmt", "github.com/golang/snappy")),
			want: []string{"chunkenc imports github.com/golang/snappy (via chunkenc → github.com/golang/snappy): chunkenc may import only"},
		},
		{
			name: "chunkenc imports a compression library",
			pkgs: append(std, p("chunkenc", "fmt", "github.com/klauspost/compress/zstd")),
			want: []string{"chunkenc imports github.com/klauspost/compress/zstd (via chunkenc → github.com/klauspost/compress/zstd): chunkenc may import only the standard library and the module's internal packages"},
		},
		{
			name: "chunkenc reaches a third-party module through an internal package",
			pkgs: append(std, p("chunkenc", "internal/deps"), p("internal/deps", "io", "github.com/prometheus/prometheus/tsdb/chunkenc")),
			want: []string{"chunkenc imports github.com/prometheus/prometheus/tsdb/chunkenc (via chunkenc → internal/deps → github.com/prometheus/prometheus/tsdb/chunkenc)"},
		},
		{
			name: "write imports engine",
			pkgs: []pkg{p("write", "engine"), p("engine")},
			want: []string{"write imports engine (via write → engine): write must not import engine"},
		},
		{
			name: "write imports chunkenc",
			pkgs: []pkg{p("write", "chunkenc"), p("chunkenc")},
			want: []string{"write imports chunkenc (via write → chunkenc): write must not import chunkenc"},
		},
		{
			name: "write imports more of Prometheus than labels",
			pkgs: append(std, p("write", "github.com/prometheus/prometheus/model/labels", "github.com/prometheus/prometheus/prompb")),
			want: []string{"write imports github.com/prometheus/prometheus/prompb (via write → github.com/prometheus/prometheus/prompb): write may import only the standard library, github.com/klauspost/compress/..., github.com/prometheus/prometheus/model/labels/..."},
		},
		{
			name: "chunkenc imports a non-internal module package",
			pkgs: []pkg{p("chunkenc", "internal/tsdata", "labels"), p("internal/tsdata"), p("labels")},
			want: []string{"chunkenc imports labels (via chunkenc → labels): chunkenc may import only"},
		},
		{
			name: "chunkenc tests may use anything",
			pkgs: []pkg{{ImportPath: mod + "/chunkenc", Name: "chunkenc", TestImports: []string{"github.com/stretchr/testify/require", mod + "/internal/tsdata"}}},
		},
		{
			name: "tests import bench and fuzz",
			pkgs: []pkg{
				{ImportPath: mod + "/engine", Name: "engine", TestImports: []string{mod + "/bench"}},
				{ImportPath: mod + "/internal/x", Name: "x", XTestImports: []string{mod + "/fuzz"}},
				p("bench"), p("fuzz"),
			},
			want: []string{"engine imports bench: nothing may import bench/", "internal/x imports fuzz: nothing may import fuzz/"},
		},
		{
			name: "ring imports raft",
			pkgs: append(std, p("raftgroup/ring", "github.com/hashicorp/raft", "github.com/cespare/xxhash/v2", "fmt", "internal/invariants"), p("internal/invariants")),
			want: []string{"raftgroup/ring imports github.com/hashicorp/raft (via raftgroup/ring → github.com/hashicorp/raft): raftgroup/ring may import only the standard library, github.com/cespare/xxhash/v2/..."},
		},
		{
			name: "ring imports its parent",
			pkgs: []pkg{p("raftgroup/ring/internal/x", "raftgroup"), p("raftgroup")},
			want: []string{"raftgroup/ring/internal/x imports raftgroup (via raftgroup/ring/internal/x → raftgroup): raftgroup/ring may import only"},
		},
		{
			name: "banned package names",
			pkgs: []pkg{p("engine/util"), p("internal/common"), {ImportPath: mod + "/server/helpers", Name: "misc"}},
			want: []string{`package engine/util is named "util"`, `package internal/common is named "common"`, `package server/helpers is named "misc"`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := check(mod, tc.pkgs)
			if len(got) != len(tc.want) {
				t.Fatalf("check gave %d messages, want %d:\n%s", len(got), len(tc.want), strings.Join(got, "\n"))
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("message %d = %q, want one containing %q", i, got[i], w)
				}
			}
		})
	}
}
