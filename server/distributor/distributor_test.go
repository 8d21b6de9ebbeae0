package distributor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"

	"github.com/myelindb/myelin/raftgroup/ring"
	"github.com/myelindb/myelin/write"
)

// evenRing returns a ring of groups 1..n, each owning 1/n of the space.
func evenRing(t testing.TB, n int) *ring.Ring {
	t.Helper()
	var tokens []ring.Token
	for i := 1; i <= n; i++ {
		tok := uint64(math.MaxUint64)
		if i < n {
			tok = math.MaxUint64 / uint64(n) * uint64(i)
		}
		tokens = append(tokens, ring.Token{Token: tok, Group: ring.GroupID(i)})
	}
	r, err := ring.NewRing(tokens)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// batch returns a batch of n series; series i has i+1 samples and, when
// bad(i), a label value "bad" that the fake writer refuses.
func batch(t testing.TB, tenant string, n int, bad func(int) bool) *write.Batch {
	t.Helper()
	bb := write.NewBuilder(tenant)
	for i := range n {
		v := "ok"
		if bad != nil && bad(i) {
			v = "bad"
		}
		enc := write.AppendLabel(nil, "__name__", "m")
		enc = write.AppendLabel(enc, "i", fmt.Sprint(i))
		enc = write.AppendLabel(enc, "x", v)
		samples := make([]write.Sample, i%3+1)
		for j := range samples {
			samples[j] = write.Sample{T: int64(j), V: float64(i)}
		}
		bb.AddEncoded(enc, samples)
	}
	return bb.Batch()
}

// fakeWriter is a Proposer: it decodes the entries it gets, records the
// parts, and refuses the samples of series labelled x="bad" in the
// outcome; fail makes a group's proposal fail.
type fakeWriter struct {
	r    *ring.Ring
	fail map[ring.GroupID]error
	// barrier, if set, is waited on by every call: it proves the parts
	// are written concurrently (a sequential writer would deadlock).
	barrier *sync.WaitGroup

	mu    sync.Mutex
	parts map[ring.GroupID][]*write.Batch
}

func (f *fakeWriter) Propose(_ context.Context, g ring.GroupID, entry []byte) ([]byte, error) {
	d, err := write.Decode(entry)
	if err != nil {
		return nil, err
	}
	b := &d
	if f.barrier != nil {
		f.barrier.Done()
		f.barrier.Wait()
	}
	var refused []write.Refusal
	for i, s := range b.Series {
		if got := f.r.Lookup(ring.Hash(b.Tenant, s.Labels)); got != g {
			return nil, fmt.Errorf("series %d of group %d's part belongs to group %d", i, g, got)
		}
		if bytes.Contains(s.Labels, []byte("bad")) {
			refused = append(refused, write.Refusal{Series: i, Rejected: len(s.Samples), Err: write.ErrOutOfOrder})
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.parts == nil {
		f.parts = map[ring.GroupID][]*write.Batch{}
	}
	f.parts[g] = append(f.parts[g], b)
	if err := f.fail[g]; err != nil {
		return nil, err
	}
	return write.AppendOutcome(nil, write.Outcome{Refused: refused}), nil
}

var errNoLeader = errors.New("no leader")

func TestWrite(t *testing.T) {
	every3 := func(i int) bool { return i%3 == 1 }
	for _, tc := range []struct {
		name    string
		groups  int
		series  int
		bad     func(int) bool
		fail    map[ring.GroupID]error
		wantErr error
	}{
		{"one group", 1, 50, nil, nil, nil},
		{"one group, refusals", 1, 50, every3, nil, nil},
		{"three groups", 3, 200, nil, nil, nil},
		{"three groups, refusals", 3, 200, every3, nil, nil},
		{"twelve groups, all refused", 12, 300, func(int) bool { return true }, nil, nil},
		{"one series", 12, 1, nil, nil, nil},
		{"empty", 3, 0, nil, nil, nil},
		{"one part fails", 3, 200, every3, map[ring.GroupID]error{2: errNoLeader}, errNoLeader},
		{"every part fails", 3, 200, nil, map[ring.GroupID]error{1: errNoLeader, 2: errNoLeader, 3: context.DeadlineExceeded}, context.DeadlineExceeded},
		{"single group fails", 1, 10, nil, map[ring.GroupID]error{1: errNoLeader}, errNoLeader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := evenRing(t, tc.groups)
			w := &fakeWriter{r: r, fail: tc.fail}
			d := New(w, func() (*ring.Ring, error) { return r, nil }, nil)
			b := batch(t, "tenant-a", tc.series, tc.bad)
			refused, err := d.Write(context.Background(), b)
			if tc.wantErr != nil {
				if !errors.Is(err, ErrIncomplete) || !errors.Is(err, tc.wantErr) {
					t.Fatalf("Write = %v, want ErrIncomplete and %v", err, tc.wantErr)
				}
				if refused != nil {
					t.Fatalf("a failed write returned refusals %v", refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// Every series reached its owner exactly once, in order.
			var seen int
			for g, parts := range w.parts {
				for _, p := range parts {
					for i := 1; i < len(p.Series); i++ {
						if seriesNum(p.Series[i-1].Labels) >= seriesNum(p.Series[i].Labels) {
							t.Fatalf("group %d's part is not in the original order", g)
						}
					}
					seen += len(p.Series)
				}
			}
			if seen != tc.series {
				t.Fatalf("groups got %d series, want %d", seen, tc.series)
			}
			// Refusals name the original indexes, sorted.
			var want []int
			for i := range tc.series {
				if tc.bad != nil && tc.bad(i) {
					want = append(want, i)
				}
			}
			var got []int
			for _, e := range refused {
				got = append(got, e.Series)
				if e.Rejected != len(b.Series[e.Series].Samples) || !errors.Is(e.Err, write.ErrOutOfOrder) {
					t.Fatalf("refusal %+v does not match series %d", e, e.Series)
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("refused series %v, want %v", got, want)
			}
		})
	}
}

// seriesNum reads the value of label i back from its encoding.
func seriesNum(enc []byte) int {
	_, rest, _ := bytes.Cut(enc, []byte("\xffi\xff"))
	v, _, _ := bytes.Cut(rest, []byte{0xff})
	var n int
	fmt.Sscan(string(v), &n)
	return n
}

func TestWriteOneGroupSendsTheBatch(t *testing.T) {
	r := evenRing(t, 1)
	w := &fakeWriter{r: r}
	b := batch(t, "t", 10, nil)
	if _, err := New(w, func() (*ring.Ring, error) { return r, nil }, nil).Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if got := w.parts[1]; len(got) != 1 || len(got[0].Series) != len(b.Series) {
		t.Fatalf("a batch of one group was not proposed as one entry: %d entries", len(got))
	}
}

func TestWriteNoRing(t *testing.T) {
	errStale := errors.New("ring may be stale")
	d := New(&fakeWriter{}, func() (*ring.Ring, error) { return nil, errStale }, nil)
	if _, err := d.Write(context.Background(), batch(t, "t", 1, nil)); !errors.Is(err, errStale) || !errors.Is(err, ErrIncomplete) {
		t.Fatalf("Write = %v, want the ring's error", err)
	}
}

type badIndexWriter struct{}

func (badIndexWriter) Propose(_ context.Context, _ ring.GroupID, entry []byte) ([]byte, error) {
	b, err := write.Decode(entry)
	if err != nil {
		return nil, err
	}
	return write.AppendOutcome(nil, write.Outcome{Refused: []write.Refusal{{Series: len(b.Series), Rejected: 1, Err: write.ErrTooOld}}}), nil
}

// TestWriteEntryRefused: an outcome that refuses the whole entry (the
// group could not decode it) fails the write.
func TestWriteEntryRefused(t *testing.T) {
	r := evenRing(t, 1)
	d := New(proposeFunc(func(context.Context, ring.GroupID, []byte) ([]byte, error) {
		return write.AppendOutcome(nil, write.Outcome{Err: write.ErrCorrupt}), nil
	}), func() (*ring.Ring, error) { return r, nil }, nil)
	if _, err := d.Write(context.Background(), batch(t, "t", 3, nil)); !errors.Is(err, write.ErrCorrupt) || !errors.Is(err, ErrIncomplete) {
		t.Fatalf("Write = %v, want ErrCorrupt", err)
	}
}

type proposeFunc func(ctx context.Context, g ring.GroupID, entry []byte) ([]byte, error)

func (f proposeFunc) Propose(ctx context.Context, g ring.GroupID, entry []byte) ([]byte, error) {
	return f(ctx, g, entry)
}

func TestWriteBadRefusalIndex(t *testing.T) {
	for _, groups := range []int{1, 4} {
		r := evenRing(t, groups)
		d := New(badIndexWriter{}, func() (*ring.Ring, error) { return r, nil }, nil)
		if _, err := d.Write(context.Background(), batch(t, "t", 40, nil)); !errors.Is(err, ErrIncomplete) {
			t.Fatalf("%d groups: Write = %v, want ErrIncomplete", groups, err)
		}
	}
}

// TestWriteParallel: the parts of one write are in flight together (the
// barrier would deadlock otherwise), and many writes run concurrently
// (run it with -race).
func TestWriteParallel(t *testing.T) {
	r := evenRing(t, 4)
	b := batch(t, "tenant-a", 400, nil)
	var wg sync.WaitGroup
	wg.Add(len(Split(r, b)))
	w := &fakeWriter{r: r, barrier: &wg}
	if _, err := New(w, func() (*ring.Ring, error) { return r, nil }, nil).Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}

	w = &fakeWriter{r: r}
	d := New(w, func() (*ring.Ring, error) { return r, nil }, nil)
	var callers sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		callers.Go(func() {
			b := batch(t, fmt.Sprint("tenant-", i), 100, func(j int) bool { return j == i })
			refused, err := d.Write(context.Background(), b)
			if err == nil && (len(refused) != 1 || refused[0].Series != i) {
				err = fmt.Errorf("caller %d: refused %v", i, refused)
			}
			errs[i] = err
		})
	}
	callers.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

func TestSplitCovers(t *testing.T) {
	r := evenRing(t, 7)
	b := batch(t, "t", 1000, nil)
	parts := Split(r, b)
	covered := make([]bool, len(b.Series))
	for pi, p := range parts {
		if pi > 0 && p.Group <= parts[pi-1].Group {
			t.Fatalf("parts not ordered by group")
		}
		for i, s := range p.Batch.Series {
			orig := p.Index[i]
			if covered[orig] || !bytes.Equal(s.Labels, b.Series[orig].Labels) {
				t.Fatalf("part %d series %d: bad index %d", pi, i, orig)
			}
			covered[orig] = true
		}
	}
	if slices.Contains(covered, false) {
		t.Fatalf("a series is in no part")
	}
	if len(parts) != 7 {
		t.Errorf("1000 series over 7 groups gave %d parts", len(parts))
	}
}
