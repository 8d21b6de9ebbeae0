package main

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// TestBadInput sends bad remote-write requests to a running node, each
// with a valid series alongside where the protocol allows one: every bad
// part gets the right status and a message that says what and where, the
// node stays up, and the valid series are stored.
func TestBadInput(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := newLogWatcher()
	done := make(chan error, 1)
	argv := []string{"-data.dir", t.TempDir(), "-http.listen-address", "127.0.0.1:0"}
	goRun(t, cancel, done, func() error { return run(ctx, argv, io.Discard, stderr) })
	addr := stderr.addr(t, done)
	waitReady(t, addr)
	base := "http://" + addr

	valid := func(name string) prompb.TimeSeries {
		return prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: name}, {Name: "job", Value: "j"}},
			Samples: []prompb.Sample{{Timestamp: 10_000, Value: 1}},
		}
	}
	encode := func(ts ...prompb.TimeSeries) []byte {
		b, err := (&prompb.WriteRequest{Timeseries: ts}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return snappy.Encode(nil, b)
	}
	bomb := snappy.Encode(nil, make([]byte, 150<<20)) // 150 MiB of zeros in ~7 MiB

	for _, tc := range []struct {
		name, tenant string
		body         []byte
		wantCode     int
		wantMsg      string
		stored       string // a metric that must be stored afterwards
	}{
		{"missing tenant", "", encode(valid("a")), 401, "no org id", ""},
		{"bad snappy", "t", []byte("definitely not snappy"), 400, "snappy", ""},
		{"malformed protobuf", "t", snappy.Encode(nil, []byte{0x0a, 0x7f, 0x01}), 400, "malformed protobuf at byte", ""},
		{"snappy bomb", "t", bomb, 400, "announces 157286400 uncompressed bytes, over the limit", ""},
		{"invalid label name", "t", encode(valid("ok_1"), prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: "bad"}, {Name: "in\xffvalid", Value: "x"}},
			Samples: []prompb.Sample{{Timestamp: 10_000, Value: 1}},
		}), 400, `invalid label name`, "ok_1"},
		{"1 MB label value", "t", encode(valid("ok_2"), prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: "big"}, {Name: "v", Value: strings.Repeat("x", 1<<20)}},
			Samples: []prompb.Sample{{Timestamp: 10_000, Value: 1}},
		}), 400, "label value too long", "ok_2"},
		{"out of order", "t", encode(valid("ok_3"), prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: "ooo"}},
			Samples: []prompb.Sample{{Timestamp: 20_000, Value: 1}, {Timestamp: 15_000, Value: 2}},
		}), 400, "out-of-order", "ok_3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, msg := do(t, "POST", base+"/api/v1/push", tc.tenant, tc.body)
			if code != tc.wantCode || !strings.Contains(msg, tc.wantMsg) {
				t.Fatalf("got %d %q, want %d with %q", code, truncate([]byte(msg)), tc.wantCode, tc.wantMsg)
			}
			if len(msg) > 2000 {
				t.Errorf("message of %d bytes: a 1 MB value must not be echoed whole", len(msg))
			}
			if code, _ := do(t, "GET", base+"/ready", "", nil); code != 200 {
				t.Fatalf("node not ready after %s: %d", tc.name, code)
			}
			if tc.stored != "" {
				code, body := do(t, "GET", base+"/api/v1/query?query="+tc.stored+"&time=10", "t", nil)
				if code != 200 || !strings.Contains(body, `"value":[10,"1"]`) {
					t.Fatalf("valid series %s not stored: %d %s", tc.stored, code, body)
				}
			}
		})
	}
	// What was refused is not stored, and no tenant sees another's series.
	for _, q := range []string{"/api/v1/series?match[]=bad", "/api/v1/series?match[]=big", "/api/v1/label/__name__/values"} {
		code, body := do(t, "GET", base+q, "t", nil)
		if code != 200 || strings.Contains(body, `"bad"`) || strings.Contains(body, `"big"`) {
			t.Fatalf("%s: %d %s", q, code, body)
		}
		code, body = do(t, "GET", base+q, "other", nil)
		if code != 200 || !strings.Contains(body, `"data":[]`) {
			t.Fatalf("tenant other sees data at %s: %d %s", q, code, body)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
