package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dbx-kv/dbx/engine/internal/base"
	"github.com/dbx-kv/dbx/engine/segment"
	"github.com/dbx-kv/dbx/engine/vfs"
	"github.com/dbx-kv/dbx/engine/wal"
)

// Store is a node's local storage. All methods are safe for concurrent use.
type Store struct {
	cfg    Config
	fs     vfs.FS
	dir    string
	lock   io.Closer
	shards []*shard

	tables *segment.TableCache
	blocks *segment.BlockCache

	fileNum atomic.Uint64 // last file number used (store-wide, so caches key on it)
	xid     atomic.Uint64 // last cross-shard batch id

	// pubmu orders publication of visible sequence numbers against
	// snapshots: publishers hold it shared, Snapshot holds it exclusively, so
	// a snapshot is a consistent cut across shards.
	pubmu sync.RWMutex
	// xmu serializes cross-shard batches.
	xmu sync.Mutex
	// closeMu makes "check closed, enqueue" atomic against Close.
	closeMu sync.RWMutex
	closed  bool
	closing atomic.Bool

	syncer *groupSyncer // SyncAlways: one fsync loop for every shard's WAL
	syncWG sync.WaitGroup

	quit    chan struct{} // workers drain and exit
	bgQuit  chan struct{} // flushers, compactors, maintenance exit
	wg      sync.WaitGroup
	bgWG    sync.WaitGroup
	compSem chan struct{}

	ckptMu sync.Mutex

	recovery RecoveryReport // written by Open only
}

const (
	storeMarker = "DBX_STORE"
	lockName    = "LOCK"
	storeFormat = 1
)

type storeMeta struct {
	Format  int       `json:"format"`
	Shards  int       `json:"shards"`
	Created time.Time `json:"created"`
}

func shardDir(dir string, i int) string { return filepath.Join(dir, fmt.Sprintf("shard-%03d", i)) }

// Open opens (creating if needed) the store in dir.
func Open(dir string, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	fs := cfg.FS
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("engine: create %s: %w", dir, err)
	}
	lock, err := fs.Lock(filepath.Join(dir, lockName))
	if err != nil {
		if errors.Is(err, vfs.ErrLocked) {
			return nil, fmt.Errorf("engine: %s is in use by another process or store: %w", dir, err)
		}
		return nil, fmt.Errorf("engine: lock %s: %w", dir, err)
	}
	s, err := open(dir, cfg, lock)
	if err != nil {
		lock.Close()
		return nil, err
	}
	return s, nil
}

func open(dir string, cfg Config, lock io.Closer) (*Store, error) {
	fs := cfg.FS
	meta, err := readStoreMeta(fs, dir)
	if err != nil {
		return nil, err
	}
	if meta == nil {
		if cfg.Shards == 0 {
			cfg.Shards = DefaultConfig().Shards
		}
		meta = &storeMeta{Format: storeFormat, Shards: cfg.Shards, Created: cfg.Now().UTC()}
		for i := 0; i < meta.Shards; i++ {
			if err := fs.MkdirAll(shardDir(dir, i), 0o755); err != nil {
				return nil, err
			}
		}
		// New directories are durable only once their parents are synced.
		if err := fs.SyncDir(filepath.Dir(dir)); err != nil {
			return nil, err
		}
		if err := writeFileAtomic(fs, dir, storeMarker, mustJSON(meta)); err != nil {
			return nil, fmt.Errorf("engine: create store in %s: %w", dir, err)
		}
	} else if cfg.Shards != 0 && cfg.Shards != meta.Shards {
		return nil, fmt.Errorf("%w: store %s was created with %d shards; Config.Shards is %d (use 0 to keep it)",
			ErrInvalidConfig, dir, meta.Shards, cfg.Shards)
	}
	cfg.Shards = meta.Shards
	s := &Store{
		cfg: cfg, fs: fs, dir: dir, lock: lock,
		blocks:  segment.NewBlockCache(cfg.BlockCacheBytes),
		quit:    make(chan struct{}),
		bgQuit:  make(chan struct{}),
		compSem: make(chan struct{}, cfg.CompactionConcurrency),
	}
	tables, err := segment.NewTableCache(cfg.TableCacheSize, s.openSegment)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	s.tables = tables
	if err := s.recover(); err != nil {
		s.tables.Close()
		return nil, err
	}
	if cfg.Sync == SyncAlways {
		s.syncer = newGroupSyncer(s.shards, cfg.MailboxSize)
		s.syncWG.Add(1)
		go func() { defer s.syncWG.Done(); s.syncer.run() }()
	}
	for _, sh := range s.shards {
		s.wg.Add(1)
		go sh.run()
		s.bgWG.Add(2)
		go func() { defer s.bgWG.Done(); sh.flusher() }()
		go func() { defer s.bgWG.Done(); sh.compactor() }()
	}
	if cfg.MaintenanceInterval > 0 {
		s.bgWG.Add(1)
		go s.maintenanceLoop()
	}
	return s, nil
}

func readStoreMeta(fs vfs.FS, dir string) (*storeMeta, error) {
	names, err := fs.List(dir)
	if err != nil {
		return nil, fmt.Errorf("engine: list %s: %w", dir, err)
	}
	has := false
	for _, n := range names {
		if n == storeMarker {
			has = true
		}
	}
	if !has {
		for _, n := range names {
			if n != lockName {
				return nil, fmt.Errorf("%w: %s is not empty and has no %s file (found %q)", ErrNotStore, dir, storeMarker, n)
			}
		}
		return nil, nil
	}
	data, err := readFile(fs, filepath.Join(dir, storeMarker))
	if err != nil {
		return nil, err
	}
	m := new(storeMeta)
	if err := json.Unmarshal(data, m); err != nil || m.Format != storeFormat || m.Shards < 1 || m.Shards > shardsMax {
		return nil, fmt.Errorf("%w: %s: unreadable %s (format or shard count invalid)", ErrNotStore, dir, storeMarker)
	}
	return m, nil
}

// Close waits for queued writes, syncs the WALs and stops every goroutine.
// Memtables are not flushed: the WAL is replayed on the next Open.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.closeMu.Unlock()
	s.closing.Store(true)
	for _, sh := range s.shards {
		sh.mu.Lock()
		sh.immSpace.Broadcast()
		sh.mu.Unlock()
	}
	close(s.quit)
	s.wg.Wait() // workers drain their queued syncs before exiting
	if s.syncer != nil {
		s.syncer.close()
		s.syncWG.Wait()
	}
	close(s.bgQuit)
	s.bgWG.Wait()
	var errs []error
	for _, sh := range s.shards {
		if sh.broken == nil {
			if err := sh.wal.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		sh.rsMu.Lock()
		rs := sh.rs
		sh.rsMu.Unlock()
		rs.unref()
	}
	s.tables.Close()
	errs = append(errs, s.lock.Close())
	return errors.Join(errs...)
}

// enter reports ErrClosed or holds the close lock shared until leave.
func (s *Store) enter() error {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	return nil
}

func (s *Store) leave() { s.closeMu.RUnlock() }

func (s *Store) shardOf(bucket uint16) *shard { return s.shards[int(bucket)%len(s.shards)] }

// ShardOf returns the index of the shard holding bucket: a batch whose
// buckets all map to one shard commits on that shard alone, without the
// cross-shard protocol (which serializes such batches store-wide).
func (s *Store) ShardOf(bucket uint16) int { return int(bucket) % len(s.shards) }

// Put stores value under (bucket, key).
func (s *Store) Put(ctx context.Context, bucket uint16, key, value []byte) error {
	var b Batch
	b.Set(bucket, key, value)
	return s.Write(ctx, &b)
}

// Delete removes (bucket, key). Deleting a missing key is not an error.
func (s *Store) Delete(ctx context.Context, bucket uint16, key []byte) error {
	var b Batch
	b.Delete(bucket, key)
	return s.Write(ctx, &b)
}

// Write applies b atomically. When ctx ends while the write is queued or in
// flight, Write returns ctx's error and the write's outcome is unknown.
func (s *Store) Write(ctx context.Context, b *Batch) error {
	wait, err := s.write(ctx, b, false)
	if err != nil {
		return err
	}
	return wait()
}

// WriteApplied is Write split in two: it returns once b is applied to the
// memtables in commit order (not yet durable, not yet visible to Get or
// snapshots), and wait then blocks until b is durable and visible, returning
// the write's result. A caller serializing read-modify-writes of a key can
// release its lock between the two, reading with GetLatestItem under the
// lock: same-key writers then share group commits instead of paying one
// fsync each. This is safe because a later write's acknowledgement implies
// every earlier write of its shard is durable (WAL order). Batches spanning
// shards are committed in full before WriteApplied returns.
func (s *Store) WriteApplied(ctx context.Context, b *Batch) (wait func() error, err error) {
	return s.write(ctx, b, true)
}

// write routes b to its shard (or the cross-shard protocol). With
// untilApplied it returns once b is applied; otherwise the returned wait
// does all the waiting (Write's path allocates nothing extra).
func (s *Store) write(ctx context.Context, b *Batch, untilApplied bool) (wait func() error, err error) {
	done := func() error { return nil }
	if b.Len() == 0 {
		return done, nil
	}
	if err := b.validate(&s.cfg); err != nil {
		return nil, err
	}
	n := len(s.shards)
	first := int(b.ops[0].bucket) % n
	for i := range b.ops {
		if int(b.ops[i].bucket)%n != first {
			if err := s.writeCross(ctx, b); err != nil {
				return nil, err
			}
			return done, nil
		}
	}
	idx := make([]int, len(b.ops))
	for i := range idx {
		idx[i] = i
	}
	r := &writeReq{b: b, idx: idx, size: b.size, done: make(chan struct{})}
	if untilApplied {
		r.applied = make(chan struct{})
	}
	if err := s.enqueue(ctx, s.shards[first], r); err != nil {
		return nil, err
	}
	wait = func() error { return s.await(ctx, r) }
	if !untilApplied {
		return wait, nil
	}
	select {
	case <-r.applied:
	case <-r.done: // finished already (both may be closed), or failed before it was applied
		if r.err != nil {
			return nil, r.err
		}
		return done, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("engine: write outcome unknown: %w", ctx.Err())
	}
	return wait, nil
}

// submit enqueues r (waiting while the mailbox is full) and waits for it.
func (s *Store) submit(ctx context.Context, sh *shard, r *writeReq) error {
	if err := s.enqueue(ctx, sh, r); err != nil {
		return err
	}
	return s.await(ctx, r)
}

// enqueue puts r in sh's mailbox, waiting (honouring ctx) while it is full.
func (s *Store) enqueue(ctx context.Context, sh *shard, r *writeReq) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	select {
	case sh.mailbox <- r:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("engine: write not queued: %w", ctx.Err())
	}
}

// await waits for a queued request's result.
func (s *Store) await(ctx context.Context, r *writeReq) error {
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return fmt.Errorf("engine: write outcome unknown: %w", ctx.Err())
	}
}

var errXAborted = errors.New("engine: cross-shard batch aborted")

// writeCross commits a batch spanning shards (protocol in xbatch.go).
func (s *Store) writeCross(ctx context.Context, b *Batch) error {
	n := len(s.shards)
	byShard := make(map[int][]int)
	for i := range b.ops {
		sid := int(b.ops[i].bucket) % n
		byShard[sid] = append(byShard[sid], i)
	}
	parts := make([]int, 0, len(byShard))
	for sid := range byShard {
		parts = append(parts, sid)
	}
	sort.Ints(parts)

	s.xmu.Lock()
	defer s.xmu.Unlock()
	if err := s.enter(); err != nil {
		return err
	}
	xid := s.xid.Add(1)
	reqs := make([]*writeReq, 0, len(parts))
	var queueErr error
	for i, sid := range parts {
		x := &xpart{xid: xid, participants: parts, home: i == 0, ctl: make(chan xctl, 4), ack: make(chan error, 1)}
		r := &writeReq{b: b, idx: byShard[sid], x: x, size: b.size / len(parts), done: make(chan struct{})}
		select {
		case s.shards[sid].mailbox <- r:
			reqs = append(reqs, r)
		case <-ctx.Done():
			queueErr = fmt.Errorf("engine: cross-shard write not queued: %w", ctx.Err())
		}
		if queueErr != nil {
			break
		}
	}
	s.leave()
	// From here on every queued participant is waiting for us: finish the
	// protocol without regard to ctx (each step is bounded by a WAL sync).
	var failed error = queueErr
	acked := make([]*writeReq, 0, len(reqs))
	for _, r := range reqs {
		if err := <-r.x.ack; err != nil {
			failed = errors.Join(failed, err)
			continue
		}
		acked = append(acked, r)
	}
	if failed == nil {
		home := reqs[0]
		home.x.ctl <- xWriteCommit
		if err := <-home.x.ack; err != nil {
			failed = err
			acked = acked[1:] // the home worker already gave up its part
			<-home.done
		}
	}
	if failed != nil {
		for _, r := range acked {
			r.x.ctl <- xAbort
			<-r.done
		}
		return fmt.Errorf("engine: cross-shard batch aborted: %w", failed)
	}
	commitWAL := reqs[0].x.commitWAL
	commitWAL.refs.Add(int32(len(reqs) - 1))
	for _, r := range reqs {
		r.x.commitWAL = commitWAL
		r.x.ctl <- xApply
	}
	for _, r := range reqs {
		<-r.x.ack
	}
	s.pubmu.RLock()
	for i, r := range reqs {
		s.shards[parts[i]].visibleSeq.Store(r.seq + r.count - 1)
	}
	s.pubmu.RUnlock()
	for _, r := range reqs {
		r.x.ctl <- xResume
		<-r.done
	}
	return nil
}

// DeleteBucketRange deletes every key of buckets [lo, hi] with a range
// tombstone; the space is reclaimed by compaction and maintenance. It is
// atomic within each shard but not across shards: after an error or a
// crash some shards may have applied it; repeating it is harmless.
func (s *Store) DeleteBucketRange(ctx context.Context, lo, hi uint16) error {
	if lo > hi {
		return fmt.Errorf("engine: DeleteBucketRange: lo %d > hi %d", lo, hi)
	}
	n := len(s.shards)
	for i, sh := range s.shards {
		if !shardHasBucketIn(i, n, lo, hi) {
			continue
		}
		r := &writeReq{del: &rangeDel{Lo: lo, Hi: hi}, size: 16, done: make(chan struct{})}
		if err := s.submit(ctx, sh, r); err != nil {
			return err
		}
		sh.kickCompaction()
	}
	return nil
}

// DeleteBuckets deletes every key of the given buckets, like
// DeleteBucketRange on each run of consecutive buckets, but with every
// range deletion queued before any is waited for, so they share group
// commits. Atomic per range and shard only.
func (s *Store) DeleteBuckets(ctx context.Context, buckets []uint16) error {
	bs := slices.Clone(buckets)
	slices.Sort(bs)
	bs = slices.Compact(bs)
	n := len(s.shards)
	var reqs []*writeReq
	var err error
	for i := 0; i < len(bs) && err == nil; {
		j := i
		for j+1 < len(bs) && bs[j+1] == bs[j]+1 {
			j++
		}
		lo, hi := bs[i], bs[j]
		i = j + 1
		for si, sh := range s.shards {
			if !shardHasBucketIn(si, n, lo, hi) {
				continue
			}
			r := &writeReq{del: &rangeDel{Lo: lo, Hi: hi}, size: 16, done: make(chan struct{})}
			if err = s.enqueue(ctx, sh, r); err != nil {
				break
			}
			reqs = append(reqs, r)
		}
	}
	for _, r := range reqs {
		err = errors.Join(err, s.await(ctx, r))
	}
	for _, sh := range s.shards {
		sh.kickCompaction()
	}
	return err
}

func shardHasBucketIn(shard, n int, lo, hi uint16) bool {
	if int(hi)-int(lo)+1 >= n {
		return true
	}
	for b := int(lo); b <= int(hi); b++ {
		if b%n == shard {
			return true
		}
	}
	return false
}

// Flush freezes every shard's active memtable and waits until all frozen
// memtables are written to segments.
func (s *Store) Flush(ctx context.Context) error {
	// Freeze every shard's memtable first so the flushes run side by side.
	for _, sh := range s.shards {
		r := &writeReq{rotate: true, done: make(chan struct{})}
		if err := s.submit(ctx, sh, r); err != nil {
			return err
		}
	}
	for _, sh := range s.shards {
		if err := waitFlushed(ctx, sh); err != nil {
			return err
		}
	}
	return nil
}

// waitFlushed waits until sh has no frozen memtable left to flush.
func waitFlushed(ctx context.Context, sh *shard) error {
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		sh.mu.Lock()
		pending, ferr := len(sh.imm), sh.flushErr
		sh.mu.Unlock()
		if pending == 0 {
			return nil
		}
		if ferr != nil {
			return fmt.Errorf("engine: flush shard %d: %w", sh.id, ferr)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ---- files ----

func (s *Store) nextFileNum() uint64 { return s.fileNum.Add(1) }

func (s *Store) xidSeen() uint64 { return s.xid.Load() }

func (s *Store) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

func (s *Store) removeFile(name string) {
	if err := s.fs.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.logf("engine: remove %s: %v", name, err)
	}
}

func (s *Store) createWAL(dir string, num uint64) (*wal.Writer, vfs.File, error) {
	f, err := s.fs.Create(walName(dir, num))
	if err != nil {
		return nil, nil, err
	}
	w, err := wal.NewWriter(f, num, wal.DefaultWriterOptions()) // writes and syncs the header
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if err := s.fs.SyncDir(dir); err != nil {
		w.Close()
		return nil, nil, err
	}
	return w, f, nil
}

func (s *Store) openSegment(num uint64) (*segment.Reader, error) {
	// Segments of every shard share one number space; find the file's shard.
	for _, sh := range s.shards {
		name := segName(sh.dir, num)
		f, err := s.fs.Open(name)
		if err == nil {
			r, err := segment.Open(f, num, s.blocks) // closes f on error
			if err != nil {
				return nil, fmt.Errorf("engine: open %s: %w", name, err)
			}
			return r, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%w: segment %06d missing", ErrCorrupt, num)
}

func (s *Store) writeManifest(dir string, m *manifest) error {
	data, err := encodeManifest(m)
	if err != nil {
		return err
	}
	return writeFileAtomic(s.fs, dir, manifestName, data)
}

// writeFileAtomic writes name in dir via a synced temp file and a rename.
func writeFileAtomic(fs vfs.FS, dir, name string, data []byte) error {
	tmp := filepath.Join(dir, name+".tmp")
	f, err := fs.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fs.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	return fs.SyncDir(dir)
}

func readFile(fs vfs.FS, name string) ([]byte, error) {
	f, err := fs.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

func mustJSON(v any) []byte {
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		panic(err)
	}
	return b
}

var _ = base.KindSet
