package engine

import (
	"errors"
	"fmt"
	"testing"
)

func TestSeriesErrorsRoundTrip(t *testing.T) {
	in := []SeriesError{
		{Series: 0, Rejected: 3, Err: fmt.Errorf("sample at 5: %w", ErrOutOfOrder)},
		{Series: 7, Rejected: 1, Err: fmt.Errorf("x: %w", ErrDuplicateSample)},
		{Series: 9, Rejected: 2, Err: ErrTooOld},
		{Series: 12, Rejected: 1, Err: fmt.Errorf("bad: %w", ErrInvalidLabels)},
		{Series: 13, Rejected: 1, Err: errors.New("something else")},
	}
	b := AppendSeriesErrors(nil, in)
	out, err := DecodeSeriesErrors(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("%d refusals, want %d", len(out), len(in))
	}
	for i := range in {
		if out[i].Series != in[i].Series || out[i].Rejected != in[i].Rejected || out[i].Err.Error() != in[i].Err.Error() {
			t.Errorf("refusal %d: got %+v, want %+v", i, out[i], in[i])
		}
		for _, k := range refusalKinds {
			if errors.Is(out[i].Err, k) != errors.Is(in[i].Err, k) {
				t.Errorf("refusal %d: errors.Is(%v) differs", i, k)
			}
		}
	}
	for n := range len(b) {
		if _, err := DecodeSeriesErrors(b[:n]); !errors.Is(err, ErrCorruptRefusals) {
			t.Fatalf("prefix of %d bytes: err %v", n, err)
		}
	}
}
