package engine

import (
	"context"
	"testing"

	"github.com/dbx-kv/dbx/engine/vfs"
)

// TestStatsWALBytesAndSyncHist: every synced write shows in WALBytes, and
// every fsync in SyncHist once (its buckets sum to Syncs).
func TestStatsWALBytesAndSyncHist(t *testing.T) {
	fs := vfs.NewMem()
	s := mustOpen(t, fs, "/db", testConfig(fs))
	defer s.Close()
	ctx := context.Background()
	before := s.Stats()
	for i := range 20 {
		if err := s.Put(ctx, uint16(i), []byte("key"), make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	var wal, syncs, hist, wal0 int64
	for _, sh := range before.Shards {
		wal0 += sh.WALBytes
	}
	for _, sh := range st.Shards {
		wal += sh.WALBytes
		syncs += sh.Syncs
		var h int64
		for _, v := range sh.SyncHist {
			h += v
		}
		if h != sh.Syncs {
			t.Errorf("shard %d: SyncHist sums to %d, Syncs is %d", sh.Shard, h, sh.Syncs)
		}
		hist += h
	}
	if wal-wal0 < 20*100 {
		t.Errorf("WALBytes grew by %d for 20 writes of 100-byte values", wal-wal0)
	}
	if syncs == 0 || hist != syncs {
		t.Errorf("syncs %d, histogram %d (SyncAlways: every write is synced)", syncs, hist)
	}
}
