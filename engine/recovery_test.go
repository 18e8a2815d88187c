package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dbx-kv/dbx/engine/vfs"
	"github.com/dbx-kv/dbx/engine/wal"
)

// logSink collects Config.Logf lines.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) logf(format string, args ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

// has reports whether a line contains every one of subs.
func (l *logSink) has(subs ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
next:
	for _, line := range l.lines {
		for _, s := range subs {
			if !strings.Contains(line, s) {
				continue next
			}
		}
		return true
	}
	return false
}

func readAllFile(t *testing.T, fs vfs.FS, name string) []byte {
	t.Helper()
	data, err := readFile(fs, name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func writeAllFile(t *testing.T, fs vfs.FS, name string, data []byte) {
	t.Helper()
	f, err := fs.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// walStore is a closed store written by writeWALStore, and what its newest
// WAL holds.
type walStore struct {
	fs    *vfs.MemFS
	cfg   Config
	acked model
	// newest is the path of the newest WAL (the highest number) and num
	// its number; offs are the start offsets of its records plus, last,
	// its size; keys[i] is the key written by record i.
	newest string
	num    uint64
	offs   []int64
	keys   []mkey
}

// writeWALStore acknowledges n single-key puts (SyncAlways) in a store of
// two shards, with a flush after the first third so the shards' newest
// WALs are not the ones Open created, and closes it.
func writeWALStore(t *testing.T, n int) *walStore {
	t.Helper()
	fs := vfs.NewMem()
	cfg := testConfig(fs)
	cfg.Shards = 2
	cfg.Sync = SyncAlways
	cfg.MemtableBytes = 1 << 20
	s := mustOpen(t, fs, "/db", cfg)
	ctx := context.Background()
	ws := &walStore{fs: fs, cfg: cfg, acked: model{}}
	for i := range n {
		k := mkey{uint16(i % 6), fmt.Sprintf("key%05d", i)}
		v := fmt.Sprintf("value %d %s", i, strings.Repeat("x", i%37))
		if err := s.Put(ctx, k.b, []byte(k.k), []byte(v)); err != nil {
			t.Fatal(err)
		}
		ws.acked[k] = v
		if i == n/3 {
			if err := s.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ws.findNewest(t)
	return ws
}

// findNewest locates the newest WAL and reads its record layout.
func (ws *walStore) findNewest(t *testing.T) {
	t.Helper()
	ws.newest, ws.num = "", 0
	for i := range ws.cfg.Shards {
		dir := shardDir("/db", i)
		names, err := ws.fs.List(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			if num, ext, ok := parseFileName(name); ok && ext == "wal" && num > ws.num {
				ws.newest, ws.num = filepath.Join(dir, name), num
			}
		}
	}
	f, err := ws.fs.Open(ws.newest)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := wal.NewReader(f, ws.num)
	if err != nil {
		t.Fatal(err)
	}
	ws.offs, ws.keys = []int64{r.ValidOffset()}, nil
	for {
		p, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		rec, err := decodeRecord(p)
		if err != nil || rec.typ != recBatch || len(rec.entries) != 1 {
			t.Fatalf("record %d: %+v, %v; want one put", len(ws.keys), rec, err)
		}
		uk := rec.entries[0].key.UserKey
		ws.keys = append(ws.keys, mkey{bucketOf(uk), string(uk[2:])})
		ws.offs = append(ws.offs, r.ValidOffset())
	}
	if r.Torn() || len(ws.keys) < 20 {
		t.Fatalf("newest wal %s: %d records, torn %v; want a clean log of at least 20", ws.newest, len(ws.keys), r.Torn())
	}
}

// recordAt returns the index of the record holding file offset off.
func (ws *walStore) recordAt(off int64) int {
	for i := 0; i+1 < len(ws.offs); i++ {
		if off < ws.offs[i+1] {
			return i
		}
	}
	return len(ws.offs) - 1
}

// reopen opens the damaged store and returns it with the acknowledged keys
// it lost.
func (ws *walStore) reopen(t *testing.T, cfg Config) (*Store, []mkey) {
	t.Helper()
	s, err := Open("/db", cfg)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	var lost []mkey
	for k, v := range ws.acked {
		got, err := s.Get(k.b, []byte(k.k))
		switch {
		case errors.Is(err, ErrNotFound):
			lost = append(lost, k)
		case err != nil || string(got) != v:
			t.Fatalf("key %v: %q, %v; want %q or absent", k, got, err, v)
		}
	}
	return s, lost
}

// checkTornReport checks the report of a reopen after damaging the newest
// WAL's tail: one torn-tail event for that file, stopping at wantOff with
// bytes dropped, consistent with the keys lost (each record holds one put
// of a key written once, so a record dropped is a key lost), in Stats and
// in the log; and never keys lost with an empty report.
func checkTornReport(t *testing.T, ws *walStore, s *Store, logs *logSink, lost []mkey, wantOff int64, wantLost int) *RecoveryEvent {
	t.Helper()
	rep := s.Recovery()
	if len(lost) > 0 && len(rep.Events) == 0 {
		t.Fatalf("%d acknowledged keys lost and the recovery report is empty", len(lost))
	}
	if len(rep.Events) != 1 || rep.Events[0].Kind != RecoveryTornTail {
		t.Fatalf("report: %+v; want one torn tail", rep)
	}
	e := rep.Events[0]
	t.Logf("lost %d keys; report: %s", len(lost), e)
	if e.File != ws.newest || e.LogNum != ws.num || e.Offset != wantOff || e.DroppedBytes <= 0 || e.Reason == "" {
		t.Fatalf("event %+v; want file %s, offset %d, bytes dropped", e, ws.newest, wantOff)
	}
	if len(lost) != wantLost {
		t.Fatalf("lost %d keys, want %d", len(lost), wantLost)
	}
	if len(lost) < e.DroppedRecords || (e.DroppedRecordsExact && len(lost) != e.DroppedRecords) {
		t.Fatalf("lost %d keys, but the report says %d records dropped (exact %v)", len(lost), e.DroppedRecords, e.DroppedRecordsExact)
	}
	if rep.TailDroppedBytes != e.DroppedBytes || rep.TailDroppedRecords != int64(e.DroppedRecords) {
		t.Fatalf("totals %+v do not match the event", rep)
	}
	st := s.Stats()
	if st.WALTailDroppedBytes != e.DroppedBytes || st.WALTailDroppedRecords != int64(e.DroppedRecords) {
		t.Fatalf("stats: %d bytes, %d records dropped; want %d, %d", st.WALTailDroppedBytes, st.WALTailDroppedRecords, e.DroppedBytes, e.DroppedRecords)
	}
	if !logs.has("torn tail", ws.newest, fmt.Sprintf("offset %d", wantOff)) {
		t.Fatalf("no log line for the torn tail: %q", logs.lines)
	}
	return &e
}

// TestWALTailDamageIsReported damages the tail of the newest WAL of a
// store with a few hundred acknowledged writes (SyncAlways) in each way a
// torn or damaged tail can look, reopens, and checks that the loss is
// reported (file, offset, bytes, records) and consistent with the keys
// actually lost. The old engine opened silently in every case.
func TestWALTailDamageIsReported(t *testing.T) {
	cases := []struct {
		name string
		// damage changes the file's bytes and returns the offset where
		// replay must stop and the number of keys lost.
		damage func(ws *walStore, data []byte) ([]byte, int64, int)
		check  func(t *testing.T, e *RecoveryEvent)
	}{
		{"cut last 10 bytes", func(ws *walStore, data []byte) ([]byte, int64, int) {
			return data[:len(data)-10], ws.offs[len(ws.offs)-2], 1
		}, func(t *testing.T, e *RecoveryEvent) {
			if e.DroppedRecords != 1 || e.DroppedRecordsExact || !strings.Contains(e.Reason, "partial record") {
				t.Fatalf("event %+v; want one (cut) record", e)
			}
		}},
		{"flip a byte of the last record", func(ws *walStore, data []byte) ([]byte, int64, int) {
			data[len(data)-1] ^= 0x40
			return data, ws.offs[len(ws.offs)-2], 1
		}, func(t *testing.T, e *RecoveryEvent) {
			if e.DroppedRecords != 1 || !e.DroppedRecordsExact || !strings.Contains(e.Reason, "checksum mismatch") {
				t.Fatalf("event %+v; want exactly one damaged record", e)
			}
		}},
		{"zero the last 100 bytes", func(ws *walStore, data []byte) ([]byte, int64, int) {
			from := int64(len(data) - 100)
			clear(data[from:])
			first := ws.recordAt(from)
			return data, ws.offs[first], len(ws.keys) - first
		}, func(t *testing.T, e *RecoveryEvent) {
			if e.DroppedRecordsExact || !strings.Contains(e.Reason, "zero") {
				t.Fatalf("event %+v; want zeros, and the record count open", e)
			}
		}},
		{"cut the file in half", func(ws *walStore, data []byte) ([]byte, int64, int) {
			cut := int64(len(data) / 2)
			rec := ws.recordAt(cut)
			if ws.offs[rec] == cut {
				cut++ // a cut at a record boundary cannot be seen (documented)
			}
			return data[:cut], ws.offs[rec], len(ws.keys) - rec
		}, func(t *testing.T, e *RecoveryEvent) {
			if e.DroppedRecords != 1 || e.DroppedRecordsExact || !strings.Contains(e.Reason, "partial record") {
				t.Fatalf("event %+v; want one cut record, the count open", e)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ws := writeWALStore(t, 300)
			data, wantOff, wantLost := c.damage(ws, readAllFile(t, ws.fs, ws.newest))
			writeAllFile(t, ws.fs, ws.newest, data)
			logs := &logSink{}
			cfg := ws.cfg
			cfg.Logf = logs.logf
			s, lost := ws.reopen(t, cfg)
			e := checkTornReport(t, ws, s, logs, lost, wantOff, wantLost)
			c.check(t, e)
			// The store goes on: writes work, and a clean reopen reports nothing.
			if err := s.Put(context.Background(), 1, []byte("after"), []byte("x")); err != nil {
				t.Fatal(err)
			}
			s.Close()
			s = mustOpen(t, ws.fs, "/db", ws.cfg)
			defer s.Close()
			if rep := s.Recovery(); len(rep.Events) != 0 || rep.TailDroppedBytes != 0 {
				t.Fatalf("second reopen: %+v", rep)
			}
		})
	}
}

// TestMissingNewestWALRefusesOpen deletes the newest WAL (which holds
// acknowledged writes): Open refuses with ErrMissingWAL naming the file and
// the override; with ForceRecover it opens, and reports the missing WAL and
// exactly the keys it held as lost. The old engine opened silently without
// them.
func TestMissingNewestWALRefusesOpen(t *testing.T) {
	ws := writeWALStore(t, 300)
	if err := ws.fs.Remove(ws.newest); err != nil {
		t.Fatal(err)
	}
	_, err := Open("/db", ws.cfg)
	if !errors.Is(err, ErrMissingWAL) || !errors.Is(err, ErrCorrupt) ||
		!strings.Contains(err.Error(), ws.newest) || !strings.Contains(err.Error(), "ForceRecover") {
		t.Fatalf("open without the newest wal: %v", err)
	}
	t.Logf("refused: %v", err)

	logs := &logSink{}
	cfg := ws.cfg
	cfg.ForceRecover = true
	cfg.Logf = logs.logf
	s, lost := ws.reopen(t, cfg)
	rep := s.Recovery()
	if len(rep.Events) != 1 || rep.Events[0].Kind != RecoveryMissingWAL || rep.Events[0].File != ws.newest ||
		rep.Events[0].LogNum != ws.num || rep.MissingWALs != 1 || s.Stats().RecoveryMissingWALs != 1 {
		t.Fatalf("report %+v; want the missing %s", rep, ws.newest)
	}
	if len(lost) != len(ws.keys) {
		t.Fatalf("lost %d keys, want the %d of the missing wal", len(lost), len(ws.keys))
	}
	if !logs.has("missing", ws.newest) {
		t.Fatalf("no log line for the missing wal: %q", logs.lines)
	}
	s.Close()
	// Accepted once, the loss is not reported again.
	s = mustOpen(t, ws.fs, "/db", ws.cfg)
	defer s.Close()
	if rep := s.Recovery(); len(rep.Events) != 0 {
		t.Fatalf("second reopen: %+v", rep)
	}
}

// TestMissingWALOfFrozenMemtable: a WAL started by a rotation is in the
// manifest before it takes writes, also while the memtable before it waits
// for its flush (so the manifest's LogNum still names the older WAL).
// Deleting the newer WAL then refuses Open; an old-style manifest (LogNum
// only) could not tell.
func TestMissingWALOfFrozenMemtable(t *testing.T) {
	mem := vfs.NewMem()
	var failSegs sync.Map
	inj := vfs.InjectorFunc(func(op vfs.Op, name string) error {
		if _, on := failSegs.Load("on"); on && op == vfs.OpCreate && strings.HasSuffix(name, ".seg") {
			return fmt.Errorf("no segments today: %w", vfs.ErrInjected)
		}
		return nil
	})
	cfg := testConfig(vfs.WithErrors(mem, inj))
	cfg.Shards = 1
	cfg.Sync = SyncAlways
	s := mustOpen(t, mem, "/db", cfg)
	ctx := context.Background()
	for i := range 20 {
		if err := s.Put(ctx, 0, fmt.Appendf(nil, "a%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	failSegs.Store("on", true)
	if err := s.Flush(ctx); err == nil {
		t.Fatal("flush succeeded with segment creation failing")
	}
	for i := range 20 {
		if err := s.Put(ctx, 0, fmt.Appendf(nil, "b%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	dir := shardDir("/db", 0)
	man, err := decodeManifest("MANIFEST", readAllFile(t, mem, filepath.Join(dir, manifestName)))
	if err != nil {
		t.Fatal(err)
	}
	if len(man.Logs) != 2 || man.Logs[0] != man.LogNum {
		t.Fatalf("manifest: LogNum %d, Logs %v; want the frozen memtable's wal and the new one", man.LogNum, man.Logs)
	}
	newest := walName(dir, man.Logs[1])
	if err := mem.Remove(newest); err != nil {
		t.Fatal(err)
	}
	ocfg := testConfig(mem)
	ocfg.Shards = 1
	if _, err := Open("/db", ocfg); !errors.Is(err, ErrMissingWAL) || !strings.Contains(err.Error(), newest) {
		t.Fatalf("open without %s: %v", newest, err)
	}
	ocfg.ForceRecover = true
	s = mustOpen(t, mem, "/db", ocfg)
	defer s.Close()
	for i := range 20 {
		if _, err := s.Get(0, fmt.Appendf(nil, "a%d", i)); err != nil {
			t.Fatalf("key a%d of the older wal: %v", i, err)
		}
	}
	if rep := s.Recovery(); rep.MissingWALs != 1 || rep.Events[0].File != newest {
		t.Fatalf("report: %+v", rep)
	}
}

// TestOldManifestWithoutLogs: a manifest written before Logs existed opens
// normally; it cannot show a missing newest WAL, but the WAL its LogNum
// names must be present.
func TestOldManifestWithoutLogs(t *testing.T) {
	ws := writeWALStore(t, 120)
	for i := range ws.cfg.Shards {
		name := filepath.Join(shardDir("/db", i), manifestName)
		man, err := decodeManifest(name, readAllFile(t, ws.fs, name))
		if err != nil {
			t.Fatal(err)
		}
		if len(man.Logs) == 0 {
			t.Fatalf("shard %d: manifest lists no wal", i)
		}
		man.Logs = nil
		data, err := encodeManifest(man)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte(`"logs"`)) {
			t.Fatal("an old-style manifest must not have the logs field")
		}
		writeAllFile(t, ws.fs, name, data)
	}
	s, lost := ws.reopen(t, ws.cfg)
	if len(lost) != 0 || len(s.Recovery().Events) != 0 {
		t.Fatalf("old manifests: lost %v, report %+v", lost, s.Recovery())
	}
	s.Close()
	// Back to old manifests naming only LogNum, and that WAL deleted.
	for i := range ws.cfg.Shards {
		name := filepath.Join(shardDir("/db", i), manifestName)
		man, err := decodeManifest(name, readAllFile(t, ws.fs, name))
		if err != nil {
			t.Fatal(err)
		}
		man.Logs = nil
		data, _ := encodeManifest(man)
		writeAllFile(t, ws.fs, name, data)
		if i == 0 {
			if err := ws.fs.Remove(walName(shardDir("/db", i), man.LogNum)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := Open("/db", ws.cfg); !errors.Is(err, ErrMissingWAL) {
		t.Fatalf("old manifest, its LogNum wal missing: %v", err)
	}
}

// TestReplaySkipsUnstorableEntry hand-crafts a WAL like the old engine
// could write (keys of 65,535 and 65,536 bytes, accepted because its key
// limit did not count the bucket prefix) next to good entries: Open
// succeeds, the good keys are readable, and each skipped entry is reported
// (file, offset, bucket, sizes) in Recovery, Stats and the log. The old
// engine refused to open ("flush replayed wal ... exceeds KeyBytesMax").
func TestReplaySkipsUnstorableEntry(t *testing.T) {
	mem := vfs.NewMem()
	cfg := testConfig(mem)
	s := mustOpen(t, mem, "/db", cfg)
	if err := s.Put(context.Background(), 4, []byte("before"), []byte("b")); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// Bucket 4 lives in shard 1 (of 3).
	const num = 900000
	name := walName(shardDir("/db", 1), num)
	f, err := mem.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	w, err := wal.NewWriter(f, num, wal.DefaultWriterOptions())
	if err != nil {
		t.Fatal(err)
	}
	const seq = 1 << 40
	var offs []int64
	appendBatch := func(seq uint64, b *Batch) {
		idx := make([]int, b.Len())
		for i := range idx {
			idx[i] = i
		}
		offs = append(offs, w.Size())
		if err := w.Append(appendOps([]byte{recBatch}, b, idx, seq)); err != nil {
			t.Fatal(err)
		}
	}
	var b1 Batch
	b1.Set(4, []byte("good1"), []byte("v1"))
	b1.Set(4, bytes.Repeat([]byte("L"), 65535), []byte("too long"))
	b1.Set(4, []byte("good2"), []byte("v2"))
	appendBatch(seq, &b1)
	var b2 Batch
	b2.Set(7, bytes.Repeat([]byte("M"), 64<<10), []byte("too long too"))
	b2.Set(7, []byte("good3"), []byte("v3"))
	appendBatch(seq+3, &b2)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	logs := &logSink{}
	cfg.Logf = logs.logf
	s, err = Open("/db", cfg)
	if err != nil {
		t.Fatalf("open with unstorable entries in a wal: %v", err)
	}
	for k, v := range map[mkey]string{{4, "before"}: "b", {4, "good1"}: "v1", {4, "good2"}: "v2", {7, "good3"}: "v3"} {
		if got, err := s.Get(k.b, []byte(k.k)); err != nil || string(got) != v {
			t.Fatalf("%v: %q, %v; want %q", k, got, err, v)
		}
	}
	rep := s.Recovery()
	if rep.SkippedEntries != 2 || len(rep.Events) != 2 || s.Stats().RecoverySkippedEntries != 2 {
		t.Fatalf("report %+v; want 2 skipped entries", rep)
	}
	for i, want := range []struct {
		bucket uint16
		key    int
		off    int64
		seq    uint64
	}{{4, 65535, offs[0], seq + 1}, {7, 64 << 10, offs[1], seq + 3}} {
		e := rep.Events[i]
		if e.Kind != RecoverySkippedEntry || e.File != name || e.LogNum != num || e.Offset != want.off || e.Bucket != want.bucket ||
			e.KeyBytes != want.key || e.ValueBytes == 0 || e.Seq != want.seq || !strings.Contains(e.Reason, "key too large") {
			t.Fatalf("event %d: %+v; want bucket %d, key %d bytes, offset %d, seq %d", i, e, want.bucket, want.key, want.off, want.seq)
		}
		if !logs.has("skipped", name, fmt.Sprintf("offset %d", want.off), fmt.Sprintf("bucket %d", want.bucket), fmt.Sprintf("key %d bytes", want.key)) {
			t.Fatalf("no log line for event %d: %q", i, logs.lines)
		}
	}
	// The store is healthy: it flushes, and reopens without a report.
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = mustOpen(t, mem, "/db", testConfig(mem))
	defer s.Close()
	if rep := s.Recovery(); len(rep.Events) != 0 {
		t.Fatalf("second reopen: %+v", rep)
	}
	if got, err := s.Get(7, []byte("good3")); err != nil || string(got) != "v3" {
		t.Fatalf("good3 after reopen: %q, %v", got, err)
	}
}
