package router

import (
	"errors"
	"sync"
	"testing"
)

func TestHolder(t *testing.T) {
	var h Holder
	if h.Load() != nil {
		t.Fatal("zero Holder holds a table")
	}
	if err := h.Store(nil); err == nil {
		t.Fatal("Store(nil) succeeded")
	}
	t5 := testTable(t, 5, 1, 1, 1)
	if err := h.Store(t5); err != nil {
		t.Fatal(err)
	}
	if h.Load() != t5 {
		t.Fatal("Load does not return the stored table")
	}
	if err := h.Store(testTable(t, 4, 1, 1, 1)); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("older epoch: %v, want ErrStaleEpoch", err)
	}
	if err := h.Store(testTable(t, 5, 1, 1, 1)); err != nil {
		t.Fatalf("same table again: %v", err)
	}
	if err := h.Store(testTable(t, 5, 1, 1, 2)); !errors.Is(err, ErrEpochConflict) {
		t.Fatalf("other table, same epoch: %v, want ErrEpochConflict", err)
	}
	if h.Load() != t5 {
		t.Fatal("a refused Store replaced the table")
	}
	t6 := testTable(t, 6, 1, 1, 2)
	if err := h.Store(t6); err != nil || h.Load() != t6 {
		t.Fatalf("newer epoch: %v", err)
	}
}

// TestHolderConcurrent runs readers against racing writers (meaningful with
// -race): readers never see the epoch go back, and only the newest table
// survives.
func TestHolderConcurrent(t *testing.T) {
	const epochs = 50
	tables := make([]*Table, epochs)
	base := testTable(t, 0, 1, 1, 1, 1)
	data, _ := base.MarshalBinary()
	for i := range tables {
		// Re-stamp the same placement with epoch i (bytes 8..16 big-endian).
		d := append([]byte(nil), data...)
		for j := 0; j < 8; j++ {
			d[8+j] = byte(uint64(i) >> (56 - 8*j))
		}
		tab, err := ParseTable(reseal(d))
		if err != nil {
			t.Fatal(err)
		}
		tables[i] = tab
	}
	var h Holder
	if err := h.Store(tables[0]); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := uint64(0)
			for {
				select {
				case <-stop:
					return
				default:
				}
				tab := h.Load()
				if e := tab.Epoch(); e < last {
					t.Errorf("epoch went back from %d to %d", last, e)
					return
				} else {
					last = e
				}
				_ = tab.OwnerString("key")
			}
		}()
	}
	var writers sync.WaitGroup
	for w := range 2 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := 1 + w; i < epochs; i += 2 {
				err := h.Store(tables[i])
				if err != nil && !errors.Is(err, ErrStaleEpoch) {
					t.Errorf("Store(epoch %d): %v", i, err)
				}
			}
		}()
	}
	writers.Wait()
	close(stop)
	wg.Wait()
	if got := h.Load().Epoch(); got != epochs-1 {
		t.Fatalf("final epoch %d, want %d", got, epochs-1)
	}
}
