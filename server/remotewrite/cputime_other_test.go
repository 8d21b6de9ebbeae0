//go:build !unix

package remotewrite

import "time"

// processCPU is unknown here: benchmarks report no CPU metric.
func processCPU() time.Duration { return 0 }
