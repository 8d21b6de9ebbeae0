package engine

import (
	"bytes"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/myelindb/myelin/write"
)

// FuzzExemplarPages feeds arbitrary bytes to the loaders of the stored
// exemplar and metadata pages (read from the store and from snapshots of
// other replicas): they must not panic, and what loads must store again
// to a page that loads to the same store.
func FuzzExemplarPages(f *testing.F) {
	es := &exemplarStore{series: map[string]*exSeries{}}
	es.resize(3)
	for i, lbls := range []string{"", "trace_id\xffabc\xff"} {
		e := write.Exemplar{T: int64(i), V: 1.5, Labels: []byte(lbls)}
		if err := es.add("__name__\xffa\xff", func() (labels.Labels, error) { return labels.FromStrings("__name__", "a"), nil }, &e); err != nil {
			f.Fatal(err)
		}
	}
	ms := &metaStore{families: map[string][]metaEntry{"a": {{typ: 1, unit: "s", help: "h", seen: 5}}}}
	for _, p := range []func(put func(int, []byte) error) error{
		func(put func(int, []byte) error) error { return appendExemplarPages(es, put) },
		func(put func(int, []byte) error) error { return appendMetadataPages(ms, put) },
	} {
		if err := p(func(_ int, v []byte) error { f.Add(v); return nil }); err != nil {
			f.Fatal(err)
		}
	}
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		es := &exemplarStore{series: map[string]*exSeries{}}
		if loadExemplarPage(es, data) == nil {
			var pages [][]byte
			if err := appendExemplarPages(es, func(_ int, v []byte) error { pages = append(pages, v); return nil }); err != nil {
				t.Fatal(err)
			}
			es2 := &exemplarStore{series: map[string]*exSeries{}}
			var again [][]byte
			for _, p := range pages {
				if err := loadExemplarPage(es2, p); err != nil {
					t.Fatalf("stored page does not load: %v", err)
				}
			}
			if err := appendExemplarPages(es2, func(_ int, v []byte) error { again = append(again, v); return nil }); err != nil {
				t.Fatal(err)
			}
			if len(pages) != len(again) || (len(pages) > 0 && !bytes.Equal(pages[0], again[0])) {
				t.Fatalf("exemplar pages not stable")
			}
		}
		ms := &metaStore{families: map[string][]metaEntry{}}
		if loadMetadataPage(ms, data) == nil {
			var pages [][]byte
			if err := appendMetadataPages(ms, func(_ int, v []byte) error { pages = append(pages, v); return nil }); err != nil {
				t.Fatal(err)
			}
			ms2 := &metaStore{families: map[string][]metaEntry{}}
			for _, p := range pages {
				if err := loadMetadataPage(ms2, p); err != nil {
					t.Fatalf("stored page does not load: %v", err)
				}
			}
		}
	})
}
