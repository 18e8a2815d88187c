package router

import (
	"errors"
	"fmt"
	"sync/atomic"
)

// Holder publishes the current Table. Load may be called from any number
// of goroutines concurrently with Store; it never blocks. The zero Holder
// holds no table.
type Holder struct {
	p atomic.Pointer[Table]
}

// Load returns the current table, or nil before the first Store.
func (h *Holder) Load() *Table { return h.p.Load() }

// Store publishes t. It fails with ErrStaleEpoch if the held table has a
// newer epoch, and with ErrEpochConflict if it has the same epoch but
// different contents; storing the held table again is a no-op.
func (h *Holder) Store(t *Table) error {
	if t == nil {
		return errors.New("router: Store of a nil table")
	}
	for {
		cur := h.p.Load()
		if cur != nil {
			switch {
			case t.epoch < cur.epoch:
				return fmt.Errorf("%w: epoch %d, holding %d", ErrStaleEpoch, t.epoch, cur.epoch)
			case t.epoch == cur.epoch && t.digest == cur.digest:
				return nil
			case t.epoch == cur.epoch:
				return fmt.Errorf("%w: epoch %d: digest %x, holding %x", ErrEpochConflict, t.epoch, t.digest[:8], cur.digest[:8])
			}
		}
		if h.p.CompareAndSwap(cur, t) {
			return nil
		}
	}
}
