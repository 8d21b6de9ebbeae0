package write

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// sentinels are the errors a decoded cause may match.
var sentinels = []error{ErrOutOfOrder, ErrDuplicateSample, ErrTooOld, ErrInvalidLabels, ErrCorrupt}

// sameOutcome: what a round trip through the codec keeps, the refusals in
// order and the errors by text and sentinel.
func sameOutcome(a, b Outcome) bool {
	return sameCause(a.Err, b.Err) && slices.EqualFunc(a.Refused, b.Refused, func(x, y Refusal) bool {
		return x.Series == y.Series && x.Rejected == y.Rejected && sameCause(x.Err, y.Err)
	})
}

func sameCause(a, b error) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Error() != b.Error() {
		return false
	}
	for _, k := range sentinels {
		if errors.Is(a, k) != errors.Is(b, k) {
			return false
		}
	}
	return true
}

func TestOutcomeRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		o    Outcome
	}{
		{"empty", Outcome{}},
		{"empty text", Outcome{Refused: []Refusal{{Series: 1, Rejected: 1, Err: errors.New("")}}}},
		{"both", Outcome{
			Refused: []Refusal{{Series: 2, Rejected: 5, Err: ErrTooOld}},
			Err:     errors.New("whole entry"),
		}},
	}
	for _, g := range goldenOutcomes() {
		cases = append(cases, struct {
			name string
			o    Outcome
		}{g.name, g.o})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			enc := AppendOutcome([]byte("x"), tc.o)
			require.Equal(t, "x", string(enc[:1]))
			got, err := DecodeOutcome(enc[1:])
			require.NoError(t, err)
			require.True(t, sameOutcome(tc.o, got), "got %+v, want %+v", got, tc.o)
			for _, r := range got.Refused {
				if r.Err == nil {
					continue
				}
				for _, k := range sentinels {
					var want bool
					for _, w := range tc.o.Refused {
						if w.Series == r.Series {
							want = errors.Is(w.Err, k)
						}
					}
					require.Equal(t, want, errors.Is(r.Err, k), "refusal of series %d matches %v", r.Series, k)
				}
			}
			if len(enc) > 1 {
				// Every proper prefix but the empty one, and a trailing
				// byte, are corrupt.
				for n := 1; n < len(enc)-1; n++ {
					_, err := DecodeOutcome(enc[1 : 1+n])
					require.ErrorIs(t, err, ErrCorruptOutcome, "prefix of %d bytes", n)
					require.NotErrorIs(t, err, ErrCorrupt, "a corrupt outcome is not a corrupt batch")
				}
				_, err := DecodeOutcome(append(enc[1:], 0))
				require.ErrorIs(t, err, ErrCorruptOutcome)
			}
		})
	}
}

func TestOutcomeEmptyIsNil(t *testing.T) {
	require.Nil(t, AppendOutcome(nil, Outcome{}))
	require.Nil(t, AppendOutcome(nil, Outcome{Refused: []Refusal{}}))
	o, err := DecodeOutcome(nil)
	require.NoError(t, err)
	require.Equal(t, Outcome{}, o)
}

func TestOutcomeEntryErrorMatchesErrCorrupt(t *testing.T) {
	_, derr := Decode([]byte{2, 0})
	require.ErrorIs(t, derr, ErrCorrupt)
	entryErr := fmt.Errorf("apply entry 7: %w", derr)
	o, err := DecodeOutcome(AppendOutcome(nil, Outcome{Err: entryErr}))
	require.NoError(t, err)
	require.ErrorIs(t, o.Err, ErrCorrupt)
	require.Equal(t, entryErr.Error(), o.Err.Error())
	require.Empty(t, o.Refused)
}

func TestDecodeOutcomeErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"unknown version", []byte{3, 0, 0, 0}},
		{"version 1 has no code 7", []byte{1, 0, 0, 1, 0, 1, 7, 1, 'x'}},
		{"unknown code of version 2", []byte{2, 0, 0, 1, 0, 1, 9, 1, 'x'}},
		{"old 'R' prefix", []byte{'R', 1, 0}},
		{"no entry cause", []byte{1}},
		{"unknown code", []byte{1, 7, 1, 'x', 0}},
		{"text without a cause", []byte{1, 0, 1, 'x', 0}},
		{"text exceeds input", []byte{1, 6, 5, 'x', 0}},
		{"count exceeds input", []byte{1, 0, 0, 2, 0, 0, 0, 0}},
		{"huge count", []byte{1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"series too large", []byte{1, 0, 0, 1, 0x80, 0x80, 0x80, 0x80, 0x08, 1, 0, 0}},
		{"bad varint", []byte{1, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{"trailing", []byte{1, 0, 0, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeOutcome(tc.in)
			require.ErrorIs(t, err, ErrCorruptOutcome)
			require.NotErrorIs(t, err, ErrCorrupt)
		})
	}
}

// TestDecodeOutcomeCorruptions: random corruptions error or decode, never
// panic, and what decodes re-encodes to an equal outcome.
func TestDecodeOutcomeCorruptions(t *testing.T) {
	enc := AppendOutcome(nil, goldenOutcomes()[0].o)
	rng := rand.New(rand.NewPCG(5, 6))
	for range 5000 {
		c := append([]byte(nil), enc...)
		c[rng.IntN(len(c))] = byte(rng.Uint32())
		o, err := DecodeOutcome(c)
		if err != nil {
			require.ErrorIs(t, err, ErrCorruptOutcome)
			continue
		}
		again, err := DecodeOutcome(AppendOutcome(nil, o))
		require.NoError(t, err)
		require.True(t, sameOutcome(o, again))
	}
}

func TestAppendOutcomePanicsOnNegativeSeries(t *testing.T) {
	require.Panics(t, func() { AppendOutcome(nil, Outcome{Refused: []Refusal{{Series: -1, Rejected: 1, Err: ErrTooOld}}}) })
}
