package engine

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/dbx-kv/dbx/engine/vfs"
)

var seedFlag = flag.Uint64("seed", 0, "seed for randomized engine tests (0 = time-based)")

func testSeed(t *testing.T) uint64 {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -seed %d)", seed, seed)
	return seed
}

type mkey struct {
	b uint16
	k string
}

type model map[mkey]string

func (m model) clone() model { return maps.Clone(m) }

// checkState compares the store (or a snapshot) with the model: every
// model key by Get, and the whole bucket space by iteration.
func checkState(t *testing.T, label string, get func(uint16, []byte) ([]byte, error), iter func() *Iter, m model) {
	t.Helper()
	for k, want := range m {
		got, err := get(k.b, []byte(k.k))
		if err != nil || string(got) != want {
			t.Fatalf("%s: get %d/%q = %q, %v; want %q", label, k.b, k.k, got, err, want)
		}
	}
	keys := slices.SortedFunc(maps.Keys(m), func(a, b mkey) int {
		if a.b != b.b {
			return int(a.b) - int(b.b)
		}
		return bytes.Compare([]byte(a.k), []byte(b.k))
	})
	it := iter()
	i := 0
	for it.First(); it.Valid(); it.Next() {
		if i >= len(keys) {
			t.Fatalf("%s: iterator has extra key %d/%q", label, it.Bucket(), it.Key())
		}
		want := keys[i]
		if it.Bucket() != want.b || string(it.Key()) != want.k || string(it.Value()) != m[want] {
			t.Fatalf("%s: iterator at %d: %d/%q=%q, want %d/%q=%q", label, i, it.Bucket(), it.Key(), it.Value(), want.b, want.k, m[want])
		}
		i++
	}
	if err := it.Close(); err != nil {
		t.Fatalf("%s: iterator: %v", label, err)
	}
	if i != len(keys) {
		t.Fatalf("%s: iterator saw %d keys, model has %d", label, i, len(keys))
	}
}

// TestModel runs random operations against the store and a map and
// demands identical results: puts, deletes, batches (cross-shard too), range
// deletes, snapshots held across later writes, iterators, flushes,
// compactions, maintenance, checkpoints and reopens.
func TestModel(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	fs := vfs.NewMem()
	cfg := testConfig(fs)
	s := mustOpen(t, fs, "/db", cfg)
	defer func() { s.Close() }()
	ctx := context.Background()
	m := model{}
	type heldSnap struct {
		sn *Snapshot
		m  model
	}
	var snaps []heldSnap
	var flushes, compactions int64
	count := func() {
		for _, sh := range s.Stats().Shards {
			flushes += sh.Flushes
			compactions += sh.Compactions
		}
	}
	const buckets = 40
	steps := 3000
	if testing.Short() {
		steps = 800
	}
	randKey := func() mkey {
		return mkey{uint16(rng.IntN(buckets)), fmt.Sprintf("key-%03d", rng.IntN(150))}
	}
	val := func(i int) string { return fmt.Sprintf("v%d-%s", i, bytes.Repeat([]byte{'x'}, rng.IntN(200))) }
	for step := 0; step < steps; step++ {
		switch p := rng.IntN(1000); {
		case p < 450:
			k, v := randKey(), val(step)
			if err := s.Put(ctx, k.b, []byte(k.k), []byte(v)); err != nil {
				t.Fatal(err)
			}
			m[k] = v
		case p < 600:
			k := randKey()
			if err := s.Delete(ctx, k.b, []byte(k.k)); err != nil {
				t.Fatal(err)
			}
			delete(m, k)
		case p < 800:
			var b Batch
			n := 1 + rng.IntN(8)
			pending := model{}
			dels := map[mkey]bool{}
			for j := 0; j < n; j++ {
				k := randKey()
				if rng.IntN(4) == 0 {
					b.Delete(k.b, []byte(k.k))
					delete(pending, k)
					dels[k] = true
				} else {
					v := val(step*10 + j)
					b.Set(k.b, []byte(k.k), []byte(v))
					pending[k] = v
					delete(dels, k)
				}
			}
			if err := s.Write(ctx, &b); err != nil {
				t.Fatal(err)
			}
			for k := range dels {
				delete(m, k)
			}
			maps.Copy(m, pending)
		case p < 810:
			lo := uint16(rng.IntN(buckets))
			hi := lo + uint16(rng.IntN(3))
			if err := s.DeleteBucketRange(ctx, lo, hi); err != nil {
				t.Fatal(err)
			}
			for k := range m {
				if k.b >= lo && k.b <= hi {
					delete(m, k)
				}
			}
		case p < 850:
			sn, err := s.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			snaps = append(snaps, heldSnap{sn, m.clone()})
		case p < 880 && len(snaps) > 0:
			i := rng.IntN(len(snaps))
			h := snaps[i]
			checkState(t, fmt.Sprintf("step %d snapshot", step), h.sn.Get, func() *Iter { return h.sn.NewIter(0, 0xffff) }, h.m)
			if rng.IntN(2) == 0 {
				h.sn.Close()
				snaps = slices.Delete(snaps, i, i+1)
			}
		case p < 900:
			checkState(t, fmt.Sprintf("step %d", step), s.Get, func() *Iter {
				it, err := s.NewIter(0, 0xffff)
				if err != nil {
					t.Fatal(err)
				}
				return it
			}, m)
		case p < 920:
			if err := s.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		case p < 935:
			if err := s.Compact(ctx); err != nil {
				t.Fatal(err)
			}
		case p < 945:
			if _, err := s.Maintain(ctx); err != nil {
				t.Fatal(err)
			}
		case p < 955:
			dir := fmt.Sprintf("/ckpt-%d", step)
			if _, err := s.Checkpoint(ctx, dir); err != nil {
				t.Fatal(err)
			}
			c := mustOpen(t, fs, dir, cfg)
			checkState(t, fmt.Sprintf("step %d checkpoint", step), c.Get, func() *Iter {
				it, _ := c.NewIter(0, 0xffff)
				return it
			}, m)
			c.Close()
			if err := s.ReleaseCheckpoint(dir); err != nil {
				t.Fatal(err)
			}
		case p < 975:
			for _, h := range snaps {
				h.sn.Close()
			}
			snaps = nil
			count()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = mustOpen(t, fs, "/db", cfg)
		}
	}
	for _, h := range snaps {
		checkState(t, "final snapshot", h.sn.Get, func() *Iter { return h.sn.NewIter(0, 0xffff) }, h.m)
		h.sn.Close()
	}
	checkState(t, "final", s.Get, func() *Iter { it, _ := s.NewIter(0, 0xffff); return it }, m)
	st := s.Stats()
	count()
	t.Logf("final: %d keys in model, %d files, %d flushes, %d compactions", len(m), len(st.Files), flushes, compactions)
	if flushes == 0 || compactions == 0 {
		t.Fatalf("the model test must exercise flushes (%d) and compactions (%d)", flushes, compactions)
	}
}
