package chunkmeasure

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// OverallDataset is the dataset of a row that totals all data sets.
const OverallDataset = "overall"

// Row is one line of a report: a codec and chunk size on one data set, or
// on all of them (Dataset "overall"). The JSON field names are a contract
// with scripts that read `chunkbench -json`.
type Row struct {
	Dataset      string `json:"dataset"`
	Encoding     string `json:"encoding"`
	ChunkSamples int    `json:"chunk_samples"`
	Samples      int64  `json:"samples"`
	Bytes        int64  `json:"bytes"`
	// BytesPerSample is Bytes / Samples; for "overall" that is total bytes
	// over total samples, so large data sets weigh more.
	BytesPerSample float64 `json:"bytes_per_sample"`
	// RatioToXOR is Bytes over the bytes of the prom-xor baseline on the
	// same samples; 0 if there is no baseline.
	RatioToXOR        float64 `json:"ratio_to_xor"`
	EncodeNsPerSample float64 `json:"encode_ns_per_sample"`
	DecodeNsPerSample float64 `json:"decode_ns_per_sample"`
}

// NewRow returns the row of result r of the named codec at chunkSamples
// per chunk on dataset, given the baseline's bytes on the same samples
// (0 if unknown).
func NewRow(dataset, encoding string, chunkSamples int, r Result, baselineBytes int64) Row {
	row := Row{
		Dataset:      dataset,
		Encoding:     encoding,
		ChunkSamples: chunkSamples,
		Samples:      r.Samples,
		Bytes:        r.Bytes,
	}
	if r.Samples > 0 {
		n := float64(r.Samples)
		row.BytesPerSample = float64(r.Bytes) / n
		row.EncodeNsPerSample = float64(r.Encode.Nanoseconds()) / n
		row.DecodeNsPerSample = float64(r.Decode.Nanoseconds()) / n
	}
	if baselineBytes > 0 {
		row.RatioToXOR = float64(r.Bytes) / float64(baselineBytes)
	}
	return row
}

// WriteJSON writes rows as one indented JSON array.
func WriteJSON(w io.Writer, rows []Row) error {
	if rows == nil {
		rows = []Row{} // "[]", not "null"
	}
	b, err := json.MarshalIndent(rows, "", "  ")
	if err != nil {
		return fmt.Errorf("encode rows: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// WriteTable writes rows as an aligned text table with a header line, and
// a blank line between data sets.
func WriteTable(w io.Writer, rows []Row) error {
	width := len("dataset")
	for _, r := range rows {
		width = max(width, len(r.Dataset))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-*s  %-10s %6s %10s %10s %8s %7s %9s %9s\n", width,
		"dataset", "encoding", "chunk", "samples", "bytes", "B/sample", "vs xor", "enc ns/s", "dec ns/s")
	for i, r := range rows {
		if i > 0 && r.Dataset != rows[i-1].Dataset {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%-*s  %-10s %6d %10d %10d %8.3f %7.3f %9.2f %9.2f\n", width,
			r.Dataset, r.Encoding, r.ChunkSamples, r.Samples, r.Bytes,
			r.BytesPerSample, r.RatioToXOR, r.EncodeNsPerSample, r.DecodeNsPerSample)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
