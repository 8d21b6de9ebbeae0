package main

import "testing"

func TestSawtooth(t *testing.T) {
	s := sawtooth{killAt: 0.9}
	for _, tc := range []struct {
		v    int
		kill bool
	}{
		{0, false}, {500, false}, {1000, false}, // no checkpoint yet
		{300, false},                            // truncated: height 1000
		{800, false}, {899, false}, {900, true}, // 90% of it
	} {
		if got := s.observe(tc.v); got != tc.kill {
			t.Fatalf("observe(%d) = %v, want %v (state %+v)", tc.v, got, tc.kill, s)
		}
	}
	if s.height != 1000 || s.drops != 1 {
		t.Fatalf("height %d drops %d, want 1000 and 1", s.height, s.drops)
	}
}
