package ring

import "github.com/cespare/xxhash/v2"

// Hash is the ring position of a tenant's series: the 64-bit xxhash
// (XXH64, seed 0) of
//
//	tenant bytes | 0xff | labels
//
// where labels is the series' label set in write's encoding (name
// 0xff value 0xff per label, names sorted: write.Series.Labels, the
// input of Prometheus's labels.StableHash). It is a format: every node
// must place a series in the same group, so changing it moves every
// series and needs a new ring format version. A valid tenant name never
// holds 0xff, so the separator makes the input unambiguous.
//
// Streaming the three parts into a Digest on the stack costs the same as
// copying them to a stack buffer for one Sum64 (47 ns for 110 bytes,
// BenchmarkHash on the shared 2-core VM), and allocates nothing.
func Hash(tenant string, labels []byte) uint64 {
	var d xxhash.Digest
	d.Reset()
	_, _ = d.WriteString(tenant)
	_, _ = d.WriteString("\xff")
	_, _ = d.Write(labels)
	return d.Sum64()
}
