package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dbx-kv/dbx/engine/vfs"
)

// crashOp is one workload operation: a put, a delete, or a batch spanning
// several shards. Values are unique per operation.
type crashOp struct {
	sets      map[mkey]string
	dels      []mkey
	rangeDel  bool // delete bucket delBucket with DeleteBucketRange
	delBucket uint16
}

func (op crashOp) applyTo(m model) {
	if op.rangeDel {
		for k := range m {
			if k.b == op.delBucket {
				delete(m, k)
			}
		}
		return
	}
	for _, k := range op.dels {
		delete(m, k)
	}
	for k, v := range op.sets {
		m[k] = v
	}
}

func genCrashOps(rng *rand.Rand, n int) []crashOp {
	ops := make([]crashOp, n)
	key := func() mkey { return mkey{uint16(rng.IntN(24)), fmt.Sprintf("k%03d", rng.IntN(120))} }
	for i := range ops {
		op := crashOp{sets: map[mkey]string{}}
		switch p := rng.IntN(100); {
		case p < 2:
			op.rangeDel, op.delBucket = true, uint16(rng.IntN(24))
		case p < 50:
			op.sets[key()] = fmt.Sprintf("op%d-%s", i, strings.Repeat("v", rng.IntN(1200)))
		case p < 70:
			op.dels = append(op.dels, key())
		default: // a batch: several keys, usually on several shards
			for j := 0; j < 2+rng.IntN(6); j++ {
				k := key()
				if rng.IntN(5) == 0 {
					op.dels = append(op.dels, k)
					delete(op.sets, k)
				} else {
					op.sets[k] = fmt.Sprintf("op%d.%d", i, j)
				}
			}
			// A key both deleted and set in one batch: the set wins (it is added last).
			kept := op.dels[:0]
			for _, k := range op.dels {
				if _, ok := op.sets[k]; !ok {
					kept = append(kept, k)
				}
			}
			op.dels = kept
		}
		ops[i] = op
	}
	return ops
}

// run applies op to s.
func (op crashOp) run(ctx context.Context, s *Store) error {
	if op.rangeDel {
		return s.DeleteBucketRange(ctx, op.delBucket, op.delBucket)
	}
	return s.Write(ctx, op.batch())
}

func (op crashOp) batch() *Batch {
	var b Batch
	for _, k := range op.dels {
		b.Delete(k.b, []byte(k.k))
	}
	for k, v := range op.sets {
		b.Set(k.b, []byte(k.k), []byte(v))
	}
	return &b
}

type crashPoint struct {
	fs    *vfs.MemFS
	acked int // operations acknowledged before the crash
	op    vfs.Op
	name  string
}

// TestCrashLoop runs a workload (puts, deletes, cross-shard batches) while
// flushes and compactions run, "crashes" at hundreds of file-system
// operations by cloning only the synced state (sometimes tearing the
// unsynced tail, sometimes with a garbage sector), reopens each clone and
// checks: it opens without error; its contents equal the model after the
// acknowledged operations, or after those plus the one in flight (which is
// then present entirely: batches are all-or-nothing); nothing else appears.
func TestCrashLoop(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 2))
	nops := 4000
	if testing.Short() {
		nops = 1500
	}
	ops := genCrashOps(rng, nops)

	mem := vfs.NewMem()
	var (
		mu      sync.Mutex
		points  []crashPoint
		acked   atomic.Int64
		opIndex atomic.Int64
	)
	// Crash points are spread over categories of file operations so WAL
	// appends do not crowd out flushes, compactions and manifest edits.
	type quota struct{ stride, max, seen, taken int }
	quotas := map[string]*quota{
		"wal": {stride: 9, max: 160}, "segment": {stride: 2, max: 160},
		"manifest": {stride: 1, max: 80}, "other": {stride: 1, max: 40},
	}
	inj := vfs.InjectorFunc(func(op vfs.Op, name string) error {
		opIndex.Add(1)
		mu.Lock()
		defer mu.Unlock()
		q := quotas[crashKind(name)]
		q.seen++
		if q.seen%q.stride != 0 || q.taken >= q.max {
			return nil
		}
		q.taken++
		n := len(points)
		// Read acked before cloning: an operation acknowledged after this
		// read but before the clone is still allowed (it is "in flight").
		a := int(acked.Load())
		c := mem.CrashClone(vfs.CrashOptions{TearUnsynced: n%3 != 0, GarbageTail: n%3 == 2, Seed: seed + uint64(n)})
		points = append(points, crashPoint{fs: c, acked: a, op: op, name: name})
		return nil
	})
	cfg := testConfig(vfs.WithErrors(mem, inj))
	cfg.MemtableBytes = 64 << 10
	s := mustOpen(t, mem, "/db", cfg)
	ctx := context.Background()
	for i, op := range ops {
		if err := op.run(ctx, s); err != nil {
			t.Fatalf("op %d: %v", i, err)
		}
		acked.Store(int64(i + 1))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Models after k operations, built incrementally.
	states := make([]model, len(ops)+1)
	states[0] = model{}
	for i, op := range ops {
		states[i+1] = states[i].clone()
		op.applyTo(states[i+1])
	}
	kinds := map[string]int{}
	for pi, p := range points {
		kinds[crashKind(p.name)]++
		rcfg := testConfig(p.fs)
		r, err := Open("/db", rcfg)
		if err != nil {
			t.Fatalf("crash point %d (%s %s, %d acked): reopen: %v", pi, p.op, p.name, p.acked, err)
		}
		got := model{}
		it, err := r.NewIter(0, 0xffff)
		if err != nil {
			t.Fatal(err)
		}
		for it.First(); it.Valid(); it.Next() {
			got[mkey{it.Bucket(), string(it.Key())}] = string(it.Value())
		}
		if err := it.Close(); err != nil {
			t.Fatalf("crash point %d: iterate: %v", pi, err)
		}
		r.Close()
		ok := false
		for k := p.acked; k <= min(p.acked+1, len(ops)); k++ {
			if equalModels(got, states[k]) {
				ok = true
				break
			}
		}
		if !ok {
			t.Fatalf("crash point %d (%s %s, %d acked): recovered state matches neither %d nor %d operations:\n%s",
				pi, p.op, p.name, p.acked, p.acked, p.acked+1, diffModels(got, states[p.acked]))
		}
	}
	t.Logf("%d crash points checked: %v", len(points), kinds)
	if len(points) < 300 {
		t.Fatalf("only %d crash points; want at least 300", len(points))
	}
	if kinds["wal"] < 50 || kinds["segment"] < 50 || kinds["manifest"] < 20 {
		t.Fatalf("crash points must cover WAL writes, segment writes (flush, compaction) and manifests: %v", kinds)
	}
}

func crashKind(name string) string {
	switch {
	case strings.HasSuffix(name, ".wal"):
		return "wal"
	case strings.HasSuffix(name, ".seg"):
		return "segment"
	case strings.Contains(name, manifestName):
		return "manifest"
	}
	return "other"
}

func equalModels(a, b model) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func diffModels(got, want model) string {
	var sb strings.Builder
	n := 0
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			fmt.Fprintf(&sb, "  %d/%s: got %.20q want %.20q\n", k.b, k.k, g, v)
			n++
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			fmt.Fprintf(&sb, "  %d/%s: unexpected %.20q\n", k.b, k.k, v)
			n++
		}
		if n > 10 {
			break
		}
	}
	return sb.String()
}

// TestWriteErrorsLeaveStoreConsistent injects an I/O error at each of many
// points (WAL writes and syncs, segment writes, manifest renames): the
// failing write returns an error, later reads still work, and after a crash
// and reopen the store holds every acknowledged write and nothing partial.
func TestWriteErrorsLeaveStoreConsistent(t *testing.T) {
	seed := testSeed(t)
	ops := genCrashOps(rand.New(rand.NewPCG(seed, 3)), 300)
	states := make([]model, len(ops)+1)
	states[0] = model{}
	for i, op := range ops {
		states[i+1] = states[i].clone()
		op.applyTo(states[i+1])
	}
	ctx := context.Background()
	failures := 0
	for at := int64(3); at < 1400; at += 37 {
		mem := vfs.NewMem()
		inj := vfs.OnIndex(at, vfs.OpWrite, vfs.OpSync, vfs.OpCreate, vfs.OpRename, vfs.OpSyncDir)
		cfg := testConfig(vfs.WithErrors(mem, inj))
		s, err := Open("/db", cfg)
		if err != nil {
			continue // the injected error hit Open itself: nothing to check
		}
		acked := 0
		for i, op := range ops {
			if err := op.run(ctx, s); err != nil {
				failures++
				// Reads keep working after a write error.
				if _, err := s.Get(0, []byte("k000")); err != nil && !errors.Is(err, ErrNotFound) {
					t.Fatalf("inject at %d: read after write error: %v", at, err)
				}
				break
			}
			acked = i + 1
		}
		s.Close()
		crashed := mem.CrashClone(vfs.CrashOptions{})
		r, err := Open("/db", testConfig(crashed))
		if err != nil {
			t.Fatalf("inject at %d: reopen: %v", at, err)
		}
		got := model{}
		it, _ := r.NewIter(0, 0xffff)
		for it.First(); it.Valid(); it.Next() {
			got[mkey{it.Bucket(), string(it.Key())}] = string(it.Value())
		}
		it.Close()
		r.Close()
		if !equalModels(got, states[acked]) && (acked == len(ops) || !equalModels(got, states[acked+1])) {
			t.Fatalf("inject at %d (%d acked): state after reopen is not the acknowledged prefix:\n%s", at, acked, diffModels(got, states[acked]))
		}
	}
	if failures == 0 {
		t.Fatal("no injected error reached a write; the test checks nothing")
	}
	t.Logf("%d runs saw an injected write failure", failures)
}

// TestDiskFull fills a capacity-limited MemFS: writes fail with an error
// wrapping ErrNoSpace (or ErrReadOnly after it), reads keep working, and a
// reopen with room again holds every acknowledged write.
func TestDiskFull(t *testing.T) {
	mem := vfs.NewMem()
	cfg := testConfig(mem)
	s := mustOpen(t, mem, "/db", cfg)
	mem.SetCapacity(mem.Used() + 300<<10)
	ctx := context.Background()
	acked := model{}
	var werr error
	for i := 0; i < 100000 && werr == nil; i++ {
		k := mkey{uint16(i % 30), fmt.Sprintf("k%06d", i)}
		v := fmt.Sprintf("%d-%s", i, strings.Repeat("z", 100))
		if werr = s.Put(ctx, k.b, []byte(k.k), []byte(v)); werr == nil {
			acked[k] = v
		}
	}
	if !errors.Is(werr, vfs.ErrNoSpace) && !errors.Is(werr, ErrReadOnly) {
		t.Fatalf("write on a full disk: %v", werr)
	}
	for k, v := range acked {
		if got, err := s.Get(k.b, []byte(k.k)); err != nil || string(got) != v {
			t.Fatalf("read on a full disk: %v/%q = %q, %v", k.b, k.k, got, err)
		}
		break
	}
	s.Close()
	mem.SetCapacity(0)
	r := mustOpen(t, mem, "/db", testConfig(mem))
	defer r.Close()
	for k, v := range acked {
		if got, err := r.Get(k.b, []byte(k.k)); err != nil || string(got) != v {
			t.Fatalf("after reopen: %v/%q = %q, %v", k.b, k.k, got, err)
		}
	}
	t.Logf("%d writes acknowledged before the disk filled: %v", len(acked), werr)
}
