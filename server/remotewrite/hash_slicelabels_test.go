//go:build slicelabels || dedupelabels

package remotewrite

import (
	"fmt"

	"github.com/prometheus/prometheus/model/labels"
)

// checkBuildHash: with -tags slicelabels (or dedupelabels) Prometheus's
// Labels.Hash is the same algorithm as StableHash, and as ours.
func checkBuildHash(ls labels.Labels, h uint64) error {
	if want := ls.Hash(); h != want {
		return fmt.Errorf("%s: hash %#x, labels.Labels.Hash %#x", ls, h, want)
	}
	return nil
}
