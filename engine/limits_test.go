package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dbx-kv/dbx/engine/internal/base"
	"github.com/dbx-kv/dbx/engine/segment"
	"github.com/dbx-kv/dbx/engine/vfs"
	"github.com/dbx-kv/dbx/engine/wal"
)

// limitEntry is one boundary write of TestEntryLimitsSurviveReopen.
type limitEntry struct {
	name     string
	bucket   uint16
	key      []byte
	value    []byte
	expireAt int64
	wantErr  error // nil: accepted, and must survive
}

func limitEntries() []limitEntry {
	key := func(n int, c byte) []byte {
		k := bytes.Repeat([]byte{c}, n)
		k[0] = 'K' // distinct from the small keys below
		return k
	}
	val := func(n int, c byte) []byte { return bytes.Repeat([]byte{c}, n) }
	small := []byte("v")
	return []limitEntry{
		{name: "key limit-1", bucket: 1, key: key(KeyBytesLimit-1, 'a'), value: small},
		{name: "key limit", bucket: 2, key: key(KeyBytesLimit, 'b'), value: small},
		{name: "key limit+1", bucket: 3, key: key(KeyBytesLimit+1, 'c'), value: small, wantErr: ErrKeyTooLarge},
		// The old default KeyBytesMax (64 KiB) was accepted and never flushed.
		{name: "key 64KiB", bucket: 4, key: key(64<<10, 'd'), value: small, wantErr: ErrKeyTooLarge},
		{name: "key limit, delete", bucket: 5, key: key(KeyBytesLimit, 'e')},
		{name: "value limit-1", bucket: 6, key: []byte("v-1"), value: val(ValueBytesLimit-1, 'f')},
		{name: "value limit", bucket: 7, key: []byte("v"), value: val(ValueBytesLimit, 'g')},
		{name: "value limit+1", bucket: 8, key: []byte("v+1"), value: val(ValueBytesLimit+1, 'h'), wantErr: ErrValueTooLarge},
		// Both at the limit with an expiry: the largest entry, in the
		// largest stored form (9-byte value header).
		{name: "key and value limit, expiry", bucket: 9, key: key(KeyBytesLimit, 'i'), value: val(ValueBytesLimit, 'j'), expireAt: 1 << 50},
	}
}

// TestEntryLimitsSurviveReopen writes keys and values at, below and above
// KeyBytesLimit and ValueBytesLimit through the public API (SyncAlways,
// the default KeyBytesMax), on the disk and on MemFS: the ones over the
// limits are refused with ErrKeyTooLarge / ErrValueTooLarge, and every
// accepted one is readable after a reopen (WAL replay and its flush) and
// after a forced flush, with no flush error logged. (Small memtables make
// the big entries go through live flushes too.) The old engine accepted
// keys of 65,535 and 65,536 bytes (no room for the bucket prefix), then
// never flushed them and refused to reopen.
func TestEntryLimitsSurviveReopen(t *testing.T) {
	if DefaultConfig().KeyBytesMax != KeyBytesLimit {
		t.Fatalf("default KeyBytesMax %d, want KeyBytesLimit %d", DefaultConfig().KeyBytesMax, KeyBytesLimit)
	}
	if KeyBytesLimit != segment.KeyBytesMax-2 {
		t.Fatalf("KeyBytesLimit %d, want the segment limit %d less the bucket prefix", KeyBytesLimit, segment.KeyBytesMax)
	}
	for _, fsName := range []string{"disk", "mem"} {
		t.Run(fsName, func(t *testing.T) {
			var fs vfs.FS = vfs.NewMem()
			dir := "/db"
			if fsName == "disk" {
				fs, dir = vfs.Default, filepath.Join(t.TempDir(), "db")
			}
			var logMu sync.Mutex
			var logs []string
			cfg := testConfig(fs)
			cfg.Sync = SyncAlways
			cfg.KeyBytesMax = DefaultConfig().KeyBytesMax
			cfg.ValueBytesMax = ValueBytesLimit
			cfg.Logf = func(format string, args ...any) {
				logMu.Lock()
				logs = append(logs, fmt.Sprintf(format, args...))
				logMu.Unlock()
			}
			ctx := context.Background()
			entries := limitEntries()
			s := mustOpen(t, fs, dir, cfg)
			for _, e := range entries {
				var b Batch
				if e.value == nil {
					// A delete at the key limit, then the key set again
					// with a value in its own batch.
					b.Delete(e.bucket, e.key)
					if err := s.Write(ctx, &b); err != nil {
						t.Fatalf("%s: delete: %v", e.name, err)
					}
					b.Reset()
					e.value = []byte("after delete")
				}
				b.SetWithExpiry(e.bucket, e.key, e.value, e.expireAt)
				err := s.Write(ctx, &b)
				if e.wantErr == nil && err != nil {
					t.Fatalf("%s: write: %v", e.name, err)
				}
				if e.wantErr != nil && !errors.Is(err, e.wantErr) {
					t.Fatalf("%s: write: %v, want %v", e.name, err, e.wantErr)
				}
			}
			// A cross-shard batch with keys at the limit (buckets 1 and 2
			// are in different shards of 3).
			var xb Batch
			xb.Set(11, bytes.Repeat([]byte("x"), KeyBytesLimit), []byte("x1"))
			xb.Set(12, bytes.Repeat([]byte("y"), KeyBytesLimit), []byte("x2"))
			if err := s.Write(ctx, &xb); err != nil {
				t.Fatalf("cross-shard batch at the key limit: %v", err)
			}
			xb.Set(13, bytes.Repeat([]byte("z"), KeyBytesLimit+1), []byte("x3"))
			if err := s.Write(ctx, &xb); !errors.Is(err, ErrKeyTooLarge) {
				t.Fatalf("cross-shard batch over the key limit: %v", err)
			}
			check := func(label string, s *Store) {
				t.Helper()
				for _, e := range entries {
					got, err := s.Get(e.bucket, e.key)
					if e.wantErr != nil {
						if !errors.Is(err, ErrKeyTooLarge) && !errors.Is(err, ErrNotFound) {
							t.Fatalf("%s: %s: get of a refused entry: %v", label, e.name, err)
						}
						continue
					}
					want := e.value
					if want == nil {
						want = []byte("after delete")
					}
					if err != nil || !bytes.Equal(got, want) {
						t.Fatalf("%s: %s: get = %d bytes, %v; want %d bytes", label, e.name, len(got), err, len(want))
					}
				}
				for b, c := range map[uint16]string{11: "x", 12: "y"} {
					if got, err := s.Get(b, bytes.Repeat([]byte(c), KeyBytesLimit)); err != nil || len(got) != 2 {
						t.Fatalf("%s: cross-shard key of bucket %d: %q, %v", label, b, got, err)
					}
				}
				if _, err := s.Get(13, bytes.Repeat([]byte("z"), KeyBytesLimit)); !errors.Is(err, ErrNotFound) {
					t.Fatalf("%s: a refused cross-shard batch left a key: %v", label, err)
				}
				st := s.Stats()
				for _, sh := range st.Shards {
					if sh.FlushError != "" || sh.ReadOnly != "" {
						t.Fatalf("%s: shard %d: flush error %q, read-only %q", label, sh.Shard, sh.FlushError, sh.ReadOnly)
					}
				}
				if st.RecoverySkippedEntries != 0 || len(s.Recovery().Events) != 0 {
					t.Fatalf("%s: recovery report not empty: %+v", label, s.Recovery())
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = mustOpen(t, fs, dir, cfg) // replays the WALs and flushes them
			check("after reopen", s)
			if err := s.Flush(ctx); err != nil {
				t.Fatalf("flush: %v", err)
			}
			check("after flush", s)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			logMu.Lock()
			defer logMu.Unlock()
			for _, l := range logs {
				if strings.Contains(l, "flush failed") || strings.Contains(l, "dropped an entry") {
					t.Fatalf("log: %s", l)
				}
			}
		})
	}
}

// TestConfigRefusesLimitsAboveStorable: KeyBytesMax, ValueBytesMax and
// BatchBytesMax above what the engine can store are refused with the
// numbers in the message.
func TestConfigRefusesLimitsAboveStorable(t *testing.T) {
	cfg := DefaultConfig()
	cfg.KeyBytesMax = KeyBytesLimit + 1
	cfg.ValueBytesMax = ValueBytesLimit + 1
	cfg.BatchBytesMax = wal.MaxRecordBytes + 1
	err := cfg.Validate()
	for _, want := range []string{
		fmt.Sprintf("KeyBytesMax (%d) must be in [1, %d]", KeyBytesLimit+1, KeyBytesLimit),
		fmt.Sprintf("ValueBytesMax (%d) must be in [0, %d]", ValueBytesLimit+1, ValueBytesLimit),
		fmt.Sprintf("BatchBytesMax (%d) must be at most %d", wal.MaxRecordBytes+1, wal.MaxRecordBytes),
	} {
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(fmt.Sprint(err), want) {
			t.Fatalf("validate: %v\nwant it to say %q", err, want)
		}
	}
	cfg = DefaultConfig()
	cfg.KeyBytesMax, cfg.ValueBytesMax = KeyBytesLimit, ValueBytesLimit
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the limits themselves: %v", err)
	}
}

// TestWALBytesMatchEncoding: the size checkBatch counts for a batch is
// exactly what its ops take in a WAL record, and a batch that passes
// checkBatch fits in one WAL record, even as a cross-shard part with every
// participant. A batch bigger than a record is refused with
// ErrBatchTooLarge (with BatchBytesMax bypassed, as Validate keeps it
// below), not left to break the shard's WAL writer.
func TestWALBytesMatchEncoding(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		var b Batch
		for range 1 + rng.IntN(20) {
			key := bytes.Repeat([]byte("k"), 1+rng.IntN(300))
			if rng.IntN(3) == 0 {
				b.Delete(uint16(rng.IntN(5)), key)
				continue
			}
			exp := int64(0)
			if rng.IntN(2) == 0 {
				exp = rng.Int64N(1 << 50)
			}
			b.SetWithExpiry(uint16(rng.IntN(5)), key, make([]byte, rng.IntN(40000)), exp)
		}
		idx := make([]int, b.Len())
		for i := range idx {
			idx[i] = i
		}
		const seq = 1 << 40
		enc := appendOps(nil, &b, idx, seq)
		if want := uvarintLen(seq) + uvarintLen(uint64(len(idx))) + b.walBytes; len(enc) != want {
			t.Fatalf("ops encode to %d bytes, walBytes says %d", len(enc), want)
		}
	}
	// The largest entry in a cross-shard part with every participant.
	var b Batch
	b.SetWithExpiry(1, bytes.Repeat([]byte("k"), KeyBytesLimit), make([]byte, ValueBytesLimit), 1<<50)
	rec := []byte{recXPart}
	rec = appendUvarint(rec, ^uint64(0))
	rec = appendUvarint(rec, shardsMax)
	for p := range shardsMax {
		rec = appendUvarint(rec, uint64(p))
	}
	rec = appendOps(rec, &b, []int{0}, ^uint64(0)>>1)
	if len(rec) > wal.MaxRecordBytes {
		t.Fatalf("the largest entry takes %d bytes in a wal record, max %d", len(rec), wal.MaxRecordBytes)
	}
	if err := checkStored(appendUserKey(nil, 1, bytes.Repeat([]byte("k"), KeyBytesLimit)), appendStoredValue(nil, make([]byte, ValueBytesLimit), 1)); err != nil {
		t.Fatalf("the largest entry is not storable: %v", err)
	}
	cfg := DefaultConfig()
	cfg.ValueBytesMax, cfg.BatchBytesMax = ValueBytesLimit, 1<<30
	var big Batch
	big.Set(1, []byte("a"), make([]byte, 40<<20))
	big.Set(2, []byte("b"), make([]byte, 40<<20))
	if err := checkBatch(&cfg, &big); !errors.Is(err, ErrBatchTooLarge) || !strings.Contains(err.Error(), "wal") {
		t.Fatalf("a batch larger than a wal record: %v", err)
	}
}

// TestFlushDropsUnstorableEntry: a flush meeting an entry no segment can
// store (which only old data can hold) drops it, counts and logs it, and
// writes the rest, instead of failing (and retrying) forever.
func TestFlushDropsUnstorableEntry(t *testing.T) {
	fs := vfs.NewMem()
	cfg := testConfig(fs)
	var logs []string
	var mu sync.Mutex
	cfg.Logf = func(format string, args ...any) {
		mu.Lock()
		logs = append(logs, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	s := mustOpen(t, fs, "/db", cfg)
	defer s.Close()
	sh := s.shards[0]
	m := newMemtable(0)
	m.add(base.InternalKey{UserKey: appendUserKey(nil, 0, []byte("a")), Seq: 1, Kind: base.KindSet}, appendStoredValue(nil, []byte("1"), 0))
	m.add(base.InternalKey{UserKey: appendUserKey(nil, 0, bytes.Repeat([]byte("b"), KeyBytesLimit+1)), Seq: 2, Kind: base.KindSet}, appendStoredValue(nil, []byte("2"), 0))
	m.add(base.InternalKey{UserKey: appendUserKey(nil, 0, []byte("c")), Seq: 3, Kind: base.KindSet}, appendStoredValue(nil, []byte("3"), 0))
	out, err := s.writeSegments(sh, &memIter{m: m}, nil, dropNothing, 0)
	if err != nil {
		t.Fatalf("flush with an unstorable entry: %v", err)
	}
	if len(out) != 1 || out[0].Entries != 2 {
		t.Fatalf("flush wrote %d files (%+v), want one of 2 entries", len(out), out)
	}
	for _, f := range out {
		s.removeFile(segName(sh.dir, f.Num))
	}
	if n := s.Stats().Shards[0].SkippedEntries; n != 1 {
		t.Fatalf("SkippedEntries = %d, want 1", n)
	}
	if n := s.Stats().RecoverySkippedEntries; n != 1 {
		t.Fatalf("RecoverySkippedEntries = %d, want 1", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(logs) != 1 || !strings.Contains(logs[0], fmt.Sprintf("key %d bytes", KeyBytesLimit+1)) {
		t.Fatalf("log: %q", logs)
	}
}
