package resp

import "sync/atomic"

// Budget is a node-wide bound on the bytes that client connections buffer
// for input. Readers reserve their buffers from it before allocating them
// and release them when they shrink or close; a reservation that would go
// over Max is refused (the connection gets ErrInputMemory) and counted.
// A nil *Budget is unbounded. Its methods are safe for concurrent use.
type Budget struct {
	max      int64
	used     atomic.Int64
	peak     atomic.Int64
	rejected atomic.Int64
}

// NewBudget returns a Budget of max bytes (max ≥ 1).
func NewBudget(max int64) *Budget { return &Budget{max: max} }

// Reserve takes n bytes if they fit under Max.
func (b *Budget) Reserve(n int) bool {
	if b == nil || n <= 0 {
		return true
	}
	for {
		u := b.used.Load()
		if u+int64(n) > b.max {
			b.rejected.Add(1)
			return false
		}
		if b.used.CompareAndSwap(u, u+int64(n)) {
			for p := b.peak.Load(); u+int64(n) > p && !b.peak.CompareAndSwap(p, u+int64(n)); p = b.peak.Load() {
			}
			return true
		}
	}
}

// Release returns n bytes.
func (b *Budget) Release(n int) {
	if b == nil || n <= 0 {
		return
	}
	b.used.Add(-int64(n))
}

// Max is the bound in bytes (0 for a nil Budget).
func (b *Budget) Max() int64 {
	if b == nil {
		return 0
	}
	return b.max
}

// Used is the bytes reserved now.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}

// Peak is the most bytes ever reserved at once.
func (b *Budget) Peak() int64 {
	if b == nil {
		return 0
	}
	return b.peak.Load()
}

// Rejected counts refused reservations.
func (b *Budget) Rejected() int64 {
	if b == nil {
		return 0
	}
	return b.rejected.Load()
}
