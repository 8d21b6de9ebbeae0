//go:build !invariants

package invariants

// Enabled reports whether expensive invariant checks run (build tag
// invariants).
const Enabled = false
