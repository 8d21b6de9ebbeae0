package fuzz

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/myelindb/myelin/server/alertmanager"
)

// FuzzStateLogDecode: the Alertmanager state log decoder never panics,
// and what it decodes encodes back to the same records.
func FuzzStateLogDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{alertmanager.StateLogVersion})
	f.Add([]byte{alertmanager.StateLogVersion, alertmanager.KindSilences, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	if b, err := os.ReadFile(filepath.Join("..", "server", "alertmanager", "testdata", "statelog-v1.golden")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, last := range []bool{false, true} {
			recs, err := alertmanager.DecodeStateLog("fuzz", b, last)
			if err != nil {
				continue
			}
			enc := []byte{alertmanager.StateLogVersion}
			for _, r := range recs {
				enc = alertmanager.AppendStateRecord(enc, r.Kind, r.Payload)
			}
			again, err := alertmanager.DecodeStateLog("fuzz", enc, false)
			if err != nil || len(again) != len(recs) {
				t.Fatalf("re-decode: %d records, %v; want %d", len(again), err, len(recs))
			}
			for i := range recs {
				if again[i].Kind != recs[i].Kind || !bytes.Equal(again[i].Payload, recs[i].Payload) {
					t.Fatalf("record %d: %+v, want %+v", i, again[i], recs[i])
				}
			}
		}
	})
}
