package invariants

import (
	"os/exec"
	"strings"
	"testing"
)

// TestEnabledMatchesTag checks that Enabled follows the build tag by asking
// the go command which file it would compile. (Comparing Enabled with itself
// in one build would prove nothing.)
func TestEnabledMatchesTag(t *testing.T) {
	for _, tc := range []struct {
		name string
		tags string
		want string
	}{
		{"default", "", "off.go"},
		{"tagged", "invariants", "on.go"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-tags", tc.tags, "-f", "{{.GoFiles}}", ".").CombinedOutput()
			if err != nil {
				t.Fatalf("go list: %v\n%s", err, out)
			}
			if got := strings.TrimSpace(string(out)); got != "[doc.go "+tc.want+"]" {
				t.Fatalf("files with tags %q = %s, want [doc.go %s]", tc.tags, got, tc.want)
			}
		})
	}
}
