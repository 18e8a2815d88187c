package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/dbx-kv/dbx/engine/vfs"
)

// TestIngestModel: rounds of "delete some buckets, ingest new contents for
// them" while another writer keeps writing other buckets (so sequence
// numbers, flushes and compactions interleave with every ingestion), with
// later writes over ingested keys, aborted ingestions, reopens and crashes
// between an ingestion's files and its commit; after each round every key
// of a model map reads back, the full scan equals the model, and level 0
// stays ordered (the invariants build checks it on every version).
func TestIngestModel(t *testing.T) {
	fs := vfs.NewMem()
	cfg := testConfig(fs)
	s := mustOpen(t, fs, "/db", cfg)
	defer func() { s.Close() }()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 11))
	model := map[string]string{} // "bucket/key" → value
	var mu sync.Mutex            // guards model against the background writer
	id := func(b uint16, k string) string { return fmt.Sprintf("%05d/%s", b, k) }
	const nb = 40 // buckets 0..39; the writer uses 20..39, ingestions 0..19

	check := func(round int) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		for ik, v := range model {
			var b uint16
			var k string
			fmt.Sscanf(ik, "%05d/%s", &b, &k)
			got, err := s.Get(b, []byte(k))
			if err != nil || string(got) != v {
				t.Fatalf("round %d: %s = %q, %v; want %q", round, ik, got, err, v)
			}
		}
		it, err := s.NewIter(0, nb-1)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for it.First(); it.Valid(); it.Next() {
			ik := id(it.Bucket(), string(it.Key()))
			if model[ik] != string(it.Value()) {
				t.Fatalf("round %d: scan found %s = %q, model %q", round, ik, it.Value(), model[ik])
			}
			n++
		}
		it.Close()
		if n != len(model) {
			t.Fatalf("round %d: scan found %d keys, model has %d", round, n, len(model))
		}
	}

	for round := 0; round < 40; round++ {
		// Background writes to buckets 20..39 during the whole ingestion.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				b := uint16(20 + i%20)
				k, v := fmt.Sprintf("w%d-%d", round, i), fmt.Sprintf("x%d", i)
				if err := s.Put(ctx, b, []byte(k), []byte(v)); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				model[id(b, k)] = v
				mu.Unlock()
			}
		})
		// Old contents, some also written through the memtable just before.
		var buckets []uint16
		for b := uint16(0); b < 20; b++ {
			if rng.IntN(3) == 0 {
				buckets = append(buckets, b)
			}
		}
		for _, b := range buckets {
			if err := s.Put(ctx, b, []byte("stale"), []byte("old")); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.DeleteBuckets(ctx, buckets); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		for ik := range model {
			var b uint16
			fmt.Sscanf(ik, "%05d/", &b)
			if slices.Contains(buckets, b) {
				delete(model, ik)
			}
		}
		mu.Unlock()
		in, err := s.NewIngestion(ctx, buckets)
		if err != nil {
			t.Fatal(err)
		}
		added := map[string]string{}
		for _, b := range buckets { // ascending buckets, ascending keys
			for j := 0; j < 50+rng.IntN(200); j++ {
				k, v := fmt.Sprintf("i%06d", j), fmt.Sprintf("r%d-%d", round, j)
				if err := in.Add(b, []byte(k), []byte(v), 0); err != nil {
					t.Fatal(err)
				}
				added[id(b, k)] = v
			}
		}
		if len(buckets) > 0 {
			if err := in.Add(buckets[0], []byte("i000000"), nil, 0); err == nil {
				t.Fatal("an out-of-order key was accepted")
			}
			if err := in.Add(39, []byte("x"), nil, 0); err == nil {
				t.Fatal("a key of a bucket not in the ingestion was accepted")
			}
		}
		abort := rng.IntN(6) == 0
		if abort {
			in.Abort()
		} else if err := in.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		close(stop)
		wg.Wait()
		if !abort {
			mu.Lock()
			for k, v := range added {
				model[k] = v
			}
			mu.Unlock()
		}
		// A later write over an ingested key wins.
		if len(buckets) > 0 && !abort {
			b := buckets[0]
			if err := s.Put(ctx, b, []byte("i000001"), []byte("later")); err != nil {
				t.Fatal(err)
			}
			model[id(b, "i000001")] = "later"
		}
		check(round)
		switch rng.IntN(4) {
		case 0:
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = mustOpen(t, fs, "/db", cfg)
			check(round)
		case 1: // a crash after an ingestion's files are written, before its commit
			next := []uint16{uint16(rng.IntN(20))}
			in, err := s.NewIngestion(ctx, next)
			if err != nil {
				t.Fatal(err)
			}
			if err := in.Add(next[0], []byte("zz-uncommitted"), []byte("lost"), 0); err != nil {
				t.Fatal(err)
			}
			if err := in.is(next[0]).finish(); err != nil {
				t.Fatal(err)
			}
			crashed := fs.CrashClone(vfs.CrashOptions{Seed: uint64(round)})
			s.Close()
			fs = crashed
			cfg = testConfig(fs)
			s = mustOpen(t, fs, "/db", cfg)
			check(round)
			if _, err := s.Get(next[0], []byte("zz-uncommitted")); !errors.Is(err, ErrNotFound) {
				t.Fatalf("an uncommitted ingestion survived a crash: %v", err)
			}
			if n := countSegFiles(t, fs); n != s.liveSegFiles() {
				t.Fatalf("%d segment files on disk, %d in the store's versions: the crash left orphans", n, s.liveSegFiles())
			}
		}
	}
}

func (in *Ingestion) is(b uint16) *ingShard { return in.shards[int(b)%len(in.s.shards)] }

func countSegFiles(t *testing.T, fs vfs.FS) int {
	t.Helper()
	n := 0
	for i := 0; i < 16; i++ {
		names, err := fs.List(shardDir("/db", i))
		if err != nil {
			break
		}
		for _, name := range names {
			if _, ext, ok := parseFileName(name); ok && ext == "seg" {
				n++
			}
		}
	}
	return n
}

func (s *Store) liveSegFiles() int {
	n := 0
	for _, sh := range s.shards {
		sh.mu.Lock()
		n += len(sh.cur.l0) + len(sh.cur.l1)
		sh.mu.Unlock()
	}
	return n
}

// TestIngestOnIdleShard: with no write after it, an ingestion's entries are
// visible as soon as Commit returns (its reserved sequence number is
// published), and stay so after a reopen.
func TestIngestOnIdleShard(t *testing.T) {
	fs := vfs.NewMem()
	cfg := testConfig(fs)
	s := mustOpen(t, fs, "/db", cfg)
	ctx := context.Background()
	in, err := s.NewIngestion(ctx, []uint16{5})
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Add(5, []byte("k"), []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	if err := in.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for pass := range 2 {
		it, err := s.GetItem(5, []byte("k"))
		if err != nil || string(it.Value) != "v" || it.Seq == 0 {
			t.Fatalf("pass %d: %+v, %v", pass, it, err)
		}
		if err := s.Put(ctx, 5, []byte("k"), []byte("w")); err != nil {
			t.Fatal(err)
		}
		if it2, err := s.GetItem(5, []byte("k")); err != nil || it2.Seq <= it.Seq {
			t.Fatalf("pass %d: a later write has seq %d, the ingested entry %d (%v)", pass, it2.Seq, it.Seq, err)
		}
		if err := s.Put(ctx, 5, []byte("k"), []byte("v")); err != nil {
			t.Fatal(err)
		}
		s.Close()
		s = mustOpen(t, fs, "/db", cfg)
	}
	s.Close()
}
