package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"runtime"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/bloom"

	"github.com/dbx-kv/dbx/engine"
)

// store is one engine under test. Keys are prefixed keys (bucket||key, see
// keys.go). Put, Get and the loaders may run concurrently; Scan, Flush,
// Settle, Compact, Shape and Close are called by one goroutine with no
// other call in flight.
type store interface {
	// Put writes one key durably: it returns after the commit group holding
	// it is fsynced.
	Put(ctx context.Context, pkey, value []byte) error
	// Get returns the length of the value of pkey; found is false if absent.
	Get(pkey []byte) (n int, found bool, err error)
	// NewLoader returns a writer of large unsynced batches for one goroutine.
	NewLoader() loader
	// Scan visits every key in order.
	Scan(fn func(pkey, value []byte)) error
	// Flush writes every memtable to disk and waits for it.
	Flush(ctx context.Context) error
	// Settle waits until no flush or compaction is pending or running, at
	// most maxWait; it reports whether the engine went idle.
	Settle(ctx context.Context, maxWait time.Duration) (bool, error)
	// Compact fully compacts the store.
	Compact(ctx context.Context) error
	// Shape describes the on-disk layout (files per level, bytes) and, for
	// the write path, commit-group statistics.
	Shape() map[string]any
	Close() error
}

// loader batches unsynced writes; it is used by one goroutine.
type loader interface {
	Add(ctx context.Context, pkey, value []byte) error
	Finish(ctx context.Context) error
}

// storeConfig is what both engines are given alike.
type storeConfig struct {
	durable       bool // fsync every commit group (write workload); false: no WAL syncs (load)
	memtableBytes int64
	cacheBytes    int64
	loadBatch     int
	compression   string // pebble: "none" or "snappy" (dbx has no compression)
}

func openStore(name, dir string, c storeConfig) (store, error) {
	switch name {
	case "dbx":
		return openDBX(dir, c)
	case "pebble":
		return openPebble(dir, c)
	}
	return nil, fmt.Errorf("unknown engine %q (want dbx or pebble)", name)
}

// ---- dbx ----

type dbxStore struct {
	s   *engine.Store
	cfg engine.Config
	c   storeConfig
}

func openDBX(dir string, c storeConfig) (*dbxStore, error) {
	cfg := engine.DefaultConfig()
	cfg.Shards = runtime.GOMAXPROCS(0)
	cfg.Sync = engine.SyncAlways
	if !c.durable {
		cfg.Sync = engine.SyncNone
	}
	cfg.MemtableBytes = c.memtableBytes
	cfg.BlockCacheBytes = c.cacheBytes
	cfg.Logf = func(format string, args ...any) { log.Printf("dbx: "+format, args...) }
	s, err := engine.Open(dir, cfg)
	if err != nil {
		return nil, err
	}
	return &dbxStore{s: s, cfg: cfg, c: c}, nil
}

func (d *dbxStore) Put(ctx context.Context, pkey, value []byte) error {
	return d.s.Put(ctx, binary.BigEndian.Uint16(pkey), pkey[2:], value)
}

func (d *dbxStore) Get(pkey []byte) (int, bool, error) {
	v, err := d.s.Get(binary.BigEndian.Uint16(pkey), pkey[2:])
	if errors.Is(err, engine.ErrNotFound) {
		return 0, false, nil
	}
	return len(v), err == nil, err
}

// dbxLoader keeps one batch per shard: a batch whose keys all fall in one
// shard commits on that shard alone, as a server grouping writes by owner
// would send them (a batch spanning shards takes the cross-shard protocol).
type dbxLoader struct {
	d       *dbxStore
	batches []engine.Batch
}

func (d *dbxStore) NewLoader() loader {
	return &dbxLoader{d: d, batches: make([]engine.Batch, d.cfg.Shards)}
}

func (l *dbxLoader) Add(ctx context.Context, pkey, value []byte) error {
	bucket := binary.BigEndian.Uint16(pkey)
	b := &l.batches[int(bucket)%len(l.batches)]
	b.Set(bucket, pkey[2:], value)
	if b.Len() < l.d.c.loadBatch {
		return nil
	}
	err := l.d.s.Write(ctx, b)
	b.Reset()
	return err
}

func (l *dbxLoader) Finish(ctx context.Context) error {
	for i := range l.batches {
		if err := l.d.s.Write(ctx, &l.batches[i]); err != nil {
			return err
		}
		l.batches[i].Reset()
	}
	return nil
}

func (d *dbxStore) Scan(fn func(pkey, value []byte)) error {
	it, err := d.s.NewIter(0, bucketsMax-1)
	if err != nil {
		return err
	}
	var pkey []byte
	for it.First(); it.Valid(); it.Next() {
		pkey = binary.BigEndian.AppendUint16(pkey[:0], it.Bucket())
		pkey = append(pkey, it.Key()...)
		fn(pkey, it.Value())
	}
	return it.Close()
}

func (d *dbxStore) Flush(ctx context.Context) error { return d.s.Flush(ctx) }

func (d *dbxStore) Settle(ctx context.Context, maxWait time.Duration) (bool, error) {
	busy := func() bool {
		for _, sh := range d.s.Stats().Shards {
			if sh.Immutable > 0 || sh.L0Files >= d.cfg.L0CompactionTrigger {
				return true
			}
		}
		return false
	}
	return settle(ctx, maxWait, busy)
}

func (d *dbxStore) Compact(ctx context.Context) error { return d.s.Compact(ctx) }

func (d *dbxStore) Shape() map[string]any {
	st := d.s.Stats()
	var l0, l1 int
	var groups, groupWrites, syncs, stalls int64
	for _, sh := range st.Shards {
		l0 += sh.L0Files
		l1 += sh.L1Files
		groups += sh.Groups
		groupWrites += sh.GroupWrites
		syncs += sh.Syncs
		stalls += sh.WriteStalls
	}
	m := map[string]any{
		"shards": len(st.Shards), "l0_files": l0, "l1_files": l1,
		"segment_bytes": st.SegmentBytes, "entries": st.Keys,
		"commit_groups": groups, "wal_syncs": syncs, "write_stalls": stalls,
	}
	if groups > 0 {
		m["writes_per_group"] = float64(groupWrites) / float64(groups)
	}
	return m
}

func (d *dbxStore) Close() error { return d.s.Close() }

// ---- pebble ----

type pebbleStore struct {
	db *pebble.DB
	wo *pebble.WriteOptions
	c  storeConfig
}

func openPebble(dir string, c storeConfig) (*pebbleStore, error) {
	cache := pebble.NewCache(c.cacheBytes)
	defer cache.Unref() // the DB holds its own reference
	comp := pebble.NoCompression
	switch c.compression {
	case "none":
	case "snappy":
		comp = pebble.SnappyCompression
	default:
		return nil, fmt.Errorf("unknown pebble compression %q (want none or snappy)", c.compression)
	}
	opts := &pebble.Options{
		Cache:        cache,
		MemTableSize: uint64(c.memtableBytes),
		Levels:       make([]pebble.LevelOptions, 7),
	}
	// Same data-block layout as dbx segments: 4 KiB blocks, a restart point
	// every 16 keys, a 10 bits/key bloom filter; pebble's own target file
	// sizes (2 MiB in L0, doubling per level).
	for i := range opts.Levels {
		l := &opts.Levels[i]
		l.BlockSize = 4096
		l.BlockRestartInterval = 16
		l.FilterPolicy = bloom.FilterPolicy(10)
		l.FilterType = pebble.TableFilter
		l.Compression = comp
		l.TargetFileSize = 2 << 20
		if i > 0 {
			l.TargetFileSize = opts.Levels[i-1].TargetFileSize * 2
		}
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, err
	}
	wo := pebble.NoSync
	if c.durable {
		wo = pebble.Sync
	}
	return &pebbleStore{db: db, wo: wo, c: c}, nil
}

func (p *pebbleStore) Put(_ context.Context, pkey, value []byte) error {
	return p.db.Set(pkey, value, p.wo)
}

func (p *pebbleStore) Get(pkey []byte) (int, bool, error) {
	v, closer, err := p.db.Get(pkey)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	n := len(v)
	return n, true, closer.Close()
}

type pebbleLoader struct {
	p *pebbleStore
	b *pebble.Batch
}

func (p *pebbleStore) NewLoader() loader { return &pebbleLoader{p: p, b: p.db.NewBatch()} }

func (l *pebbleLoader) Add(_ context.Context, pkey, value []byte) error {
	if err := l.b.Set(pkey, value, nil); err != nil {
		return err
	}
	if int(l.b.Count()) < l.p.c.loadBatch {
		return nil
	}
	err := l.b.Commit(pebble.NoSync)
	l.b.Reset()
	return err
}

func (l *pebbleLoader) Finish(context.Context) error {
	err := l.b.Commit(pebble.NoSync)
	return errors.Join(err, l.b.Close())
}

func (p *pebbleStore) Scan(fn func(pkey, value []byte)) error {
	it, err := p.db.NewIter(nil)
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		fn(it.Key(), it.Value())
	}
	return it.Close()
}

func (p *pebbleStore) Flush(context.Context) error { return p.db.Flush() }

func (p *pebbleStore) Settle(ctx context.Context, maxWait time.Duration) (bool, error) {
	busy := func() bool {
		m := p.db.Metrics()
		return m.Compact.NumInProgress > 0 || m.Flush.NumInProgress > 0
	}
	return settle(ctx, maxWait, busy)
}

func (p *pebbleStore) Compact(context.Context) error {
	return p.db.Compact([]byte{0}, []byte{0xff, 0xff, 0xff}, true)
}

func (p *pebbleStore) Shape() map[string]any {
	m := p.db.Metrics()
	files := make([]int64, len(m.Levels))
	for i := range m.Levels {
		files[i] = m.Levels[i].NumFiles
	}
	return map[string]any{
		"read_amp": m.ReadAmp(), "files_per_level": files,
		"sstable_bytes": m.DiskSpaceUsage() - m.WAL.PhysicalSize,
		"disk_bytes":    m.DiskSpaceUsage(),
		"flushes":       m.Flush.Count, "compactions": m.Compact.Count,
		"memtable_bytes": m.MemTable.Size,
	}
}

func (p *pebbleStore) Close() error { return p.db.Close() }

// settle polls busy every 50ms until it has been false for three polls in
// a row, or maxWait passes.
func settle(ctx context.Context, maxWait time.Duration, busy func() bool) (bool, error) {
	deadline := time.Now().Add(maxWait)
	idle := 0
	for idle < 3 {
		if time.Now().After(deadline) {
			return false, nil
		}
		if busy() {
			idle = 0
		} else {
			idle++
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	return true, nil
}
