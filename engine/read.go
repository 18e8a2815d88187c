package engine

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/dbx-kv/dbx/engine/internal/base"
)

// Item is a value with its expiry (Unix ms, 0 = none) and the sequence
// number of the write that stored it.
type Item struct {
	Value    []byte
	ExpireAt int64
	// Seq is the sequence number of the write that stored the value: it is
	// never 0, and a later write of the key (in the same store) always has
	// a larger one, across restarts too. Callers use it as the key's
	// version (WATCH); sequence numbers of different shards or stores are
	// unrelated.
	Seq uint64
}

// Snapshot is a point-in-time read view across every shard. It pins the
// memtables and files it reads from (their reference counts keep them), so
// hold it only as long as needed and Close it.
type Snapshot struct {
	s      *Store
	rs     []*readState
	seqs   []uint64
	closed sync.Once
}

// Snapshot returns a consistent view: a cross-shard batch is either
// entirely visible in it or not at all, and every write acknowledged before
// the call is visible.
func (s *Store) Snapshot() (*Snapshot, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	return s.snapshot(), nil
}

func (s *Store) snapshot() *Snapshot {
	sn := &Snapshot{s: s, rs: make([]*readState, len(s.shards)), seqs: make([]uint64, len(s.shards))}
	s.pubmu.Lock()
	for i, sh := range s.shards {
		sn.seqs[i] = sh.visibleSeq.Load()
		sn.rs[i] = sh.loadReadState()
	}
	s.pubmu.Unlock()
	return sn
}

// Close releases the snapshot. It is safe to call more than once.
func (sn *Snapshot) Close() {
	sn.closed.Do(func() {
		for _, rs := range sn.rs {
			rs.unref()
		}
	})
}

// Get reads (bucket, key) as of the snapshot.
func (sn *Snapshot) Get(bucket uint16, key []byte) ([]byte, error) {
	it, err := sn.GetItem(bucket, key)
	return it.Value, err
}

// GetItem reads (bucket, key) and its expiry as of the snapshot.
func (sn *Snapshot) GetItem(bucket uint16, key []byte) (Item, error) {
	if err := checkKey(&sn.s.cfg, key); err != nil {
		return Item{}, err
	}
	i := int(bucket) % len(sn.s.shards)
	return sn.s.shards[i].get(sn.rs[i], appendUserKey(nil, bucket, key), sn.seqs[i], sn.s.cfg.Now().UnixMilli())
}

// NewIter iterates buckets [lo, hi] as of the snapshot.
func (sn *Snapshot) NewIter(lo, hi uint16) *Iter { return sn.newIter(lo, hi) }

// Get returns the current value of (bucket, key) or ErrNotFound.
func (s *Store) Get(bucket uint16, key []byte) ([]byte, error) {
	it, err := s.GetItem(bucket, key)
	return it.Value, err
}

// GetItem returns the current value and expiry of (bucket, key).
func (s *Store) GetItem(bucket uint16, key []byte) (Item, error) {
	if err := checkKey(&s.cfg, key); err != nil {
		return Item{}, err
	}
	if err := s.enter(); err != nil {
		return Item{}, err
	}
	defer s.leave()
	sh := s.shardOf(bucket)
	seq := sh.visibleSeq.Load() // before the read state: the state then holds every entry <= seq
	rs := sh.loadReadState()
	defer rs.unref()
	return sh.get(rs, appendUserKey(make([]byte, 0, len(key)+2), bucket, key), seq, s.cfg.Now().UnixMilli())
}

// GetLatestItem is GetItem including writes that are applied but not yet
// durable (see WriteApplied). Use it only under a lock that orders the
// writes of the key: a value it returns may still be lost by a crash, but
// then so is every later write of the same shard.
func (s *Store) GetLatestItem(bucket uint16, key []byte) (Item, error) {
	if err := checkKey(&s.cfg, key); err != nil {
		return Item{}, err
	}
	if err := s.enter(); err != nil {
		return Item{}, err
	}
	defer s.leave()
	sh := s.shardOf(bucket)
	seq := max(sh.appliedSeq.Load(), sh.visibleSeq.Load())
	rs := sh.loadReadState()
	defer rs.unref()
	return sh.get(rs, appendUserKey(make([]byte, 0, len(key)+2), bucket, key), seq, s.cfg.Now().UnixMilli())
}

// NewIter iterates buckets [lo, hi] (inclusive) over an implicit snapshot
// taken now; Close releases it.
func (s *Store) NewIter(lo, hi uint16) (*Iter, error) {
	sn, err := s.Snapshot()
	if err != nil {
		return nil, err
	}
	it := sn.newIter(lo, hi)
	it.ownsSnap = true
	return it, nil
}

// get finds the newest entry of ukey with seq <= snap in rs.
func (sh *shard) get(rs *readState, ukey []byte, snap uint64, now int64) (Item, error) {
	found := func(k base.InternalKey, sv []byte) (Item, error) {
		if k.Kind == base.KindDelete || coveredBy(rs.v.dels, ukey, k.Seq, snap) {
			return Item{}, ErrNotFound
		}
		v, exp, ok := decodeStoredValue(sv)
		if !ok {
			return Item{}, errCorruptValue(k)
		}
		if exp != 0 && exp <= now {
			return Item{}, ErrNotFound
		}
		return Item{Value: append([]byte(nil), v...), ExpireAt: exp, Seq: k.Seq}, nil
	}
	if n, ok := rs.mem.get(ukey, snap); ok {
		return found(n.key, n.value)
	}
	for i := len(rs.imm) - 1; i >= 0; i-- {
		if n, ok := rs.imm[i].get(ukey, snap); ok {
			return found(n.key, n.value)
		}
	}
	for _, f := range rs.v.l0 {
		if f.MinSeq > snap || !f.overlaps(ukey, ukey) {
			continue
		}
		k, v, ok, err := sh.s.segGet(f.Num, ukey, snap)
		if err != nil {
			return Item{}, err
		}
		if ok {
			return found(k, v)
		}
	}
	if f := rs.v.l1Find(ukey); f != nil {
		k, v, ok, err := sh.s.segGet(f.Num, ukey, snap)
		if err != nil {
			return Item{}, err
		}
		if ok {
			return found(k, v)
		}
	}
	return Item{}, ErrNotFound
}

// segGet looks ukey up in one segment, with the entry's sequence number
// (range tombstones and Item.Seq need it); the value is copied.
func (s *Store) segGet(num uint64, ukey []byte, snap uint64) (base.InternalKey, []byte, bool, error) {
	r, release, err := s.tables.Acquire(num)
	if err != nil {
		return base.InternalKey{}, nil, false, err
	}
	defer release()
	k, v, found, err := r.Lookup(ukey, snap)
	if err != nil || !found {
		return base.InternalKey{}, nil, false, err
	}
	return base.InternalKey{UserKey: ukey, Seq: k.Seq, Kind: k.Kind}, append([]byte(nil), v...), true, nil
}

func errCorruptValue(k base.InternalKey) error {
	return fmt.Errorf("%w: malformed stored value for %s", ErrCorrupt, k)
}

// WaitVisible waits until every write applied to the store before the call
// (WriteApplied included) is visible to snapshots and Get, i.e. durable;
// it returns ctx's error if ctx ends first. A snapshot taken afterwards
// holds every write applied before WaitVisible was called.
func (s *Store) WaitVisible(ctx context.Context) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	targets := make([]uint64, len(s.shards))
	for i, sh := range s.shards {
		targets[i] = sh.appliedSeq.Load()
	}
	for i, sh := range s.shards {
		for d := 100 * time.Microsecond; sh.visibleSeq.Load() < targets[i]; d = min(2*d, 5*time.Millisecond) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(d):
			}
		}
	}
	return nil
}
