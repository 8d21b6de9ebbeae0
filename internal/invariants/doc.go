// Package invariants switches expensive self-checks on and off.
//
// Enabled is a constant: true only when built with -tags invariants (as
// `make check` and CI do), false otherwise, so a guarded check compiles away
// in normal builds:
//
//	if invariants.Enabled {
//		h.checkSorted() // O(n) walk; too slow for every append in production
//	}
//
// A check behind Enabled must not change behaviour, only panic (with a
// "BUG: ..." message) when an invariant is broken. The package has no other
// state and imports nothing.
package invariants
