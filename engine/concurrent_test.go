package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/dbx-kv/dbx/engine/vfs"
)

// TestConcurrent runs writers, readers, snapshot holders, iterators and
// flush/compaction together (run it with -race). Invariants:
//   - each writer's counter key only grows, as seen by any reader;
//   - a snapshot reads the same values every time it is read;
//   - a cross-shard "pair" batch writes the same counter to two keys in
//     different shards: every snapshot sees both halves equal.
func TestConcurrent(t *testing.T) {
	fs := vfs.NewMem()
	cfg := testConfig(fs)
	s := mustOpen(t, fs, "/db", cfg)
	defer s.Close()
	ctx := context.Background()
	const writers, perWriter = 4, 400
	enc := func(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }
	dec := func(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

	var wg sync.WaitGroup
	errc := make(chan error, 64)
	done := make(chan struct{})
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := []byte(fmt.Sprintf("counter-%d", w))
			for i := uint64(1); i <= perWriter; i++ {
				var b Batch
				b.Set(uint16(w), key, enc(i))
				// The pair: buckets 100+w and 101+w live on different shards (3 shards).
				b.Set(uint16(100+w), []byte("pair"), enc(i))
				b.Set(uint16(101+w), []byte("pair-b"), enc(i))
				b.Set(uint16(w+10), fmt.Appendf(nil, "filler-%d", i), make([]byte, 200))
				if err := s.Write(ctx, &b); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	var readers sync.WaitGroup
	for r := 0; r < 3; r++ {
		readers.Add(1)
		go func() {
			defer readers.Done()
			last := make([]uint64, writers)
			for i := 0; i < 5000; i++ {
				select {
				case <-done:
					return
				default:
				}
				w := i % writers
				v, err := s.Get(uint16(w), []byte(fmt.Sprintf("counter-%d", w)))
				if errors.Is(err, ErrNotFound) {
					continue
				}
				if err != nil {
					errc <- err
					return
				}
				if n := dec(v); n < last[w] {
					errc <- fmt.Errorf("counter %d went back from %d to %d", w, last[w], n)
					return
				} else {
					last[w] = n
				}
			}
		}()
	}
	readers.Add(1)
	go func() { // snapshots: stable and atomic across shards
		defer readers.Done()
		for i := 0; i < 200; i++ {
			select {
			case <-done:
				return
			default:
			}
			sn, err := s.Snapshot()
			if err != nil {
				errc <- err
				return
			}
			for w := 0; w < writers; w++ {
				a, errA := sn.Get(uint16(100+w), []byte("pair"))
				b, errB := sn.Get(uint16(101+w), []byte("pair-b"))
				if (errA == nil) != (errB == nil) || (errA == nil && dec(a) != dec(b)) {
					errc <- fmt.Errorf("snapshot sees half a cross-shard batch: %x/%v vs %x/%v", a, errA, b, errB)
				}
				a2, _ := sn.Get(uint16(100+w), []byte("pair"))
				if string(a) != string(a2) {
					errc <- fmt.Errorf("snapshot changed under a reader: %x then %x", a, a2)
				}
			}
			it := sn.NewIter(0, 200)
			for it.First(); it.Valid(); it.Next() {
			}
			if err := it.Close(); err != nil {
				errc <- err
			}
			sn.Close()
		}
	}()
	readers.Add(1)
	go func() {
		defer readers.Done()
		for i := 0; i < 20; i++ {
			select {
			case <-done:
				return
			default:
			}
			if err := s.Flush(ctx); err != nil {
				errc <- err
				return
			}
			if i%5 == 0 {
				if err := s.Compact(ctx); err != nil {
					errc <- err
					return
				}
			}
		}
	}()
	wg.Wait()
	close(done)
	readers.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	for w := 0; w < writers; w++ {
		v, err := s.Get(uint16(w), []byte(fmt.Sprintf("counter-%d", w)))
		if err != nil || dec(v) != perWriter {
			t.Fatalf("final counter %d = %v, %v", w, v, err)
		}
	}
}
