package fuzz

import (
	"bytes"
	"errors"
	"testing"

	"github.com/myelindb/myelin/raftgroup/cluster"
	"github.com/myelindb/myelin/raftgroup/ring"
)

// FuzzMetadataDecode feeds arbitrary bytes to cluster.DecodeMetadata, the
// decoder of the metadata group's checkpoints and of the snapshots a new
// member receives from the leader. It must not panic and fail only with
// cluster.ErrCorruptMeta; what decodes re-encodes stably.
func FuzzMetadataDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("mymt\x01"))
	s := ringEvents(f, []byte{0, 0, 0, 1, 2, 0, 1, 1})
	v := &cluster.View{State: s, Index: 42}
	f.Add(cluster.AppendMetadata(nil, v))
	empty, err := ring.NewState(ring.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(cluster.AppendMetadata(nil, &cluster.View{State: empty}))
	var rules *cluster.RuleGroups
	for _, c := range []cluster.RuleChange{
		cluster.SetRuleGroup("t1", "ns", "g", []byte("name: g\nrules: []\n")),
		cluster.SetRuleGroup("t1", "", "h", nil),
		cluster.SetRuleGroup("t2", "ns", "g", []byte("x")),
	} {
		if rules, err = rules.Apply(c); err != nil {
			f.Fatal(err)
		}
	}
	f.Add(cluster.AppendMetadata(nil, &cluster.View{State: s, Index: 43, Rules: rules}))
	gens := (*cluster.CacheGenerations)(nil).Bump("t1").Bump("t2").Bump("t1")
	f.Add(cluster.AppendMetadata(nil, &cluster.View{State: s, Index: 44, Rules: rules, CacheGens: gens}))
	f.Add(cluster.AppendMetadata(nil, &cluster.View{State: s, Index: 45, CacheGens: gens}))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := cluster.DecodeMetadata(data)
		if err != nil {
			if !errors.Is(err, cluster.ErrCorruptMeta) {
				t.Fatalf("error %v does not match ErrCorruptMeta", err)
			}
			return
		}
		b1 := cluster.AppendMetadata(nil, v)
		v2, err := cluster.DecodeMetadata(b1)
		if err != nil {
			t.Fatalf("re-encoded metadata does not decode: %v", err)
		}
		if b2 := cluster.AppendMetadata(nil, v2); !bytes.Equal(b1, b2) {
			t.Fatalf("metadata does not re-encode stably")
		}
	})
}

// FuzzRuleChangeDecode feeds arbitrary bytes to cluster.DecodeRuleChange,
// the decoder of the metadata log's rule group changes. It must not
// panic and fail only with cluster.ErrCorruptMeta; what decodes
// re-encodes to the same bytes.
func FuzzRuleChangeDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add(cluster.AppendRuleChange(nil, cluster.SetRuleGroup("t", "ns", "g", []byte("name: g\nrules: []\n"))))
	f.Add(cluster.AppendRuleChange(nil, cluster.DeleteRuleGroup("t", "ns", "g")))
	f.Add(cluster.AppendRuleChange(nil, cluster.DeleteRuleNamespace("t", "")))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := cluster.DecodeRuleChange(data)
		if err != nil {
			if !errors.Is(err, cluster.ErrCorruptMeta) {
				t.Fatalf("error %v does not match ErrCorruptMeta", err)
			}
			return
		}
		if b := cluster.AppendRuleChange(nil, c); !bytes.Equal(b, data) {
			t.Fatalf("rule change re-encodes to %x, not %x", b, data)
		}
	})
}

// FuzzCacheGenBumpDecode feeds arbitrary bytes to
// cluster.DecodeCacheGenBump, the decoder of the metadata log's
// results-cache generation bumps. It must not panic and fail only with
// cluster.ErrCorruptMeta; what decodes re-encodes to the same bytes.
func FuzzCacheGenBumpDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add(cluster.AppendCacheGenBump(nil, "t"))
	f.Add(cluster.AppendCacheGenBump(nil, "a|b"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tenant, err := cluster.DecodeCacheGenBump(data)
		if err != nil {
			if !errors.Is(err, cluster.ErrCorruptMeta) {
				t.Fatalf("error %v does not match ErrCorruptMeta", err)
			}
			return
		}
		if b := cluster.AppendCacheGenBump(nil, tenant); !bytes.Equal(b, data) {
			t.Fatalf("cache generation bump re-encodes to %x, not %x", b, data)
		}
	})
}
