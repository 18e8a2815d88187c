package engine

import (
	"sync"
	"testing"

	"github.com/dbx-kv/dbx/engine/internal/base"
)

// TestMemtableConcurrentGet has one writer adding ever newer versions of a
// key while readers look it up at the published sequence: a reader must
// never get a version newer than the sequence it asked for (a regression:
// findGE once re-read x.next[0] after comparing it, returning a node the
// writer had just linked in front).
func TestMemtableConcurrentGet(t *testing.T) {
	m := newMemtable(1)
	key := []byte("\x00\x01k")
	var visible atomicSeq
	var wg sync.WaitGroup
	const n = 20000
	wg.Add(1)
	go func() {
		defer wg.Done()
		for seq := uint64(1); seq <= n; seq++ {
			m.add(base.InternalKey{UserKey: key, Seq: seq, Kind: base.KindSet}, []byte{byte(seq)})
			visible.store(seq)
		}
	}()
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				snap := visible.load()
				if snap == 0 {
					continue
				}
				node, ok := m.get(key, snap)
				if !ok || node.key.Seq != snap {
					got := uint64(0)
					if ok {
						got = node.key.Seq
					}
					t.Errorf("get(snap %d) = seq %d, found %v", snap, got, ok)
					return
				}
			}
		}()
	}
	wg.Wait()
}

type atomicSeq struct {
	mu sync.Mutex
	v  uint64
}

func (a *atomicSeq) store(v uint64) { a.mu.Lock(); a.v = v; a.mu.Unlock() }
func (a *atomicSeq) load() uint64   { a.mu.Lock(); defer a.mu.Unlock(); return a.v }
