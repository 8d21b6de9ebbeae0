// Package archtest holds no code, only a test: TestDependencyRules enforces
// the import rules of the repository's STYLE.md (layout section) on every
// package of the module, using `go list -deps`. Change STYLE.md first, then
// the rules here.
package archtest
