package server

import (
	"math/bits"
	"strconv"
	"strings"
	"sync/atomic"
)

// cmdStats are one command's figures for INFO commandstats and
// latencystats: atomics only, so the hot path takes no lock and allocates
// nothing.
type cmdStats struct {
	calls, usec, failed, rejected atomic.Int64
	lat                           latHist
}

// latBuckets: bucket i counts latencies in [2^(i-1), 2^i) µs (bucket 0:
// under 1 µs); the last one everything from 2^(latBuckets-2) µs (~9 min) up.
const latBuckets = 30

// latHist is a lock-free log2 histogram of latencies in microseconds.
type latHist struct{ b [latBuckets]atomic.Int64 }

func (h *latHist) observe(us int64) {
	i := 0
	if us > 0 {
		i = min(bits.Len64(uint64(us)), latBuckets-1)
	}
	h.b[i].Add(1)
}

// percentiles returns the upper bounds (µs) of the buckets holding each
// quantile q (0..1), or nil when nothing was observed.
func (h *latHist) percentiles(qs ...float64) []float64 {
	var counts [latBuckets]int64
	total := int64(0)
	for i := range counts {
		counts[i] = h.b[i].Load()
		total += counts[i]
	}
	if total == 0 {
		return nil
	}
	out := make([]float64, len(qs))
	for j, q := range qs {
		rank := int64(q*float64(total) + 0.5)
		rank = max(rank, 1)
		seen := int64(0)
		for i, n := range counts {
			seen += n
			if seen >= rank {
				out[j] = float64(uint64(1) << i) // bucket i's upper bound: 2^i µs
				break
			}
		}
	}
	return out
}

func (h *latHist) reset() {
	for i := range h.b {
		h.b[i].Store(0)
	}
}

func (st *cmdStats) reset() {
	st.calls.Store(0)
	st.usec.Store(0)
	st.failed.Store(0)
	st.rejected.Store(0)
	st.lat.reset()
}

// errorTypes are the error prefixes INFO errorstats counts separately, by
// the first word of the reply as Redis does. The list is fixed so the set
// stays bounded whatever a backend answers: an unlisted prefix counts as
// ERR.
var errorTypes = [...]string{"ERR", "MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN", "CROSSSLOT", "NOAUTH", "WRONGPASS", "NOPROTO", "EXECABORT", "WRONGTYPE", "LOADING", "READONLY", "BUSY", "OOM", "NOPERM"}

// errorIndex is the index in errorTypes of msg's first word (0, ERR, when
// it is not listed). It does not allocate.
func errorIndex(msg string) int {
	w := msg
	if i := strings.IndexByte(msg, ' '); i >= 0 {
		w = msg[:i]
	}
	for i, t := range errorTypes {
		if w == t {
			return i
		}
	}
	return 0
}

// errorStats counts error replies by type.
type errorStats struct{ n [len(errorTypes)]atomic.Int64 }

// formatUsec renders microseconds as Redis does in latencystats (3 decimals).
func formatUsec(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
