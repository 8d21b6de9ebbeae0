package chunkenc

// HistogramSectionBits returns the bits e spent on each section of the
// histogram chunks it wrote (timestamps, hints and layouts, count and zero
// count, sum, buckets) and resets the counters.
func HistogramSectionBits(e *Encoder) [histSections]int {
	s := e.stats.hist
	e.stats.hist = [histSections]int{}
	return s
}
