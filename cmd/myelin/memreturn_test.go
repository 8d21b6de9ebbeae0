package main

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// TestMemoryReturner: the first request returns memory at once; requests
// within the interval after it coalesce into one return at its end; a
// request after a quiet interval returns at once again; close stops it.
func TestMemoryReturner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var returns atomic.Int64
		m := newMemoryReturner(5*time.Second, func() { returns.Add(1) })
		expect := func(want int64, when string) {
			t.Helper()
			synctest.Wait()
			if got := returns.Load(); got != want {
				t.Fatalf("%s: %d returns, want %d", when, got, want)
			}
		}
		expect(0, "before any request")
		m.quiesced()
		expect(1, "right after the first request")
		for range 3 { // three groups going quiet within the interval
			time.Sleep(time.Second)
			m.quiesced()
		}
		expect(1, "3 s after the first return")
		time.Sleep(2 * time.Second)
		expect(2, "once the interval has passed")
		time.Sleep(time.Minute)
		expect(2, "a quiet minute later")
		m.quiesced()
		expect(3, "right after a request after a quiet interval")
		m.quiesced()
		m.close()
		m.close()
		expect(3, "after close")
	})
}

// TestMemoryReturnerBacksOff: after a return that took a second (a large
// heap), the next waits memoryReturnShare seconds.
func TestMemoryReturnerBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var returns atomic.Int64
		m := newMemoryReturner(5*time.Second, func() { time.Sleep(time.Second); returns.Add(1) })
		defer m.close()
		m.quiesced()
		time.Sleep(2 * time.Second)
		m.quiesced()
		time.Sleep(memoryReturnShare*time.Second - time.Second)
		synctest.Wait()
		if got := returns.Load(); got != 1 {
			t.Fatalf("%d returns before the back-off passed, want 1", got)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if got := returns.Load(); got != 2 {
			t.Fatalf("%d returns after the back-off, want 2", got)
		}
	})
}
