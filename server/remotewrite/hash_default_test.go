//go:build !slicelabels && !dedupelabels

package remotewrite

import "github.com/prometheus/prometheus/model/labels"

// checkBuildHash: Prometheus's default (stringlabels) Labels.Hash hashes
// its internal length-prefixed encoding, not name/0xff/value/0xff, so it
// is not comparable; StableHash is. See hash_slicelabels_test.go.
func checkBuildHash(labels.Labels, uint64) error { return nil }
