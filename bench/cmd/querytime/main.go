// Command querytime sends one API request again and again over one
// keep-alive connection and prints the median, 10th and 90th percentile
// of its latency: for comparing one node's answers before and after a
// change, or two binaries taking turns on the same data.
//
//	go run ./bench/cmd/querytime -n 200 -path /api/v1/query \
//	    'query=node_load15{instance="host-0:19100"}[2h]' time=1796695826
//
// Every request sends Cache-Control: no-store, so the query frontend
// evaluates it rather than answering from its results cache.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

func main() {
	base := flag.String("base", "http://127.0.0.1:9009/prometheus", "Base of the Prometheus API (the part before /api/v1).")
	path := flag.String("path", "/api/v1/query", "API path.")
	tenant := flag.String("tenant", "bench", "X-Scope-OrgID header value; empty sends none.")
	n := flag.Int("n", 50, "Requests.")
	flag.Parse()
	form := url.Values{}
	for _, kv := range flag.Args() {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			log.Fatalf("querytime: parameter %q is not name=value", kv)
		}
		form.Add(k, v)
	}
	if *n < 1 {
		log.Fatal("querytime: -n must be at least 1")
	}
	client := &http.Client{Timeout: 2 * time.Minute}
	ms := make([]float64, 0, *n)
	for range *n {
		req, err := http.NewRequest(http.MethodGet, *base+*path+"?"+form.Encode(), nil)
		if err != nil {
			log.Fatal(err)
		}
		if *tenant != "" {
			req.Header.Set("X-Scope-OrgID", *tenant)
		}
		req.Header.Set("Cache-Control", "no-store")
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			log.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			log.Fatalf("querytime: %s", resp.Status)
		}
		ms = append(ms, float64(time.Since(start).Microseconds())/1000)
	}
	slices.Sort(ms)
	at := func(q float64) float64 { return ms[min(len(ms)-1, int(q*float64(len(ms))))] }
	fmt.Printf("median %.3f ms p10 %.3f p90 %.3f (%d requests)\n", at(0.5), at(0.1), at(0.9), len(ms))
}
