package engine

import (
	"context"
	"fmt"
	"testing"

	"github.com/dbx-kv/dbx/engine/internal/base"
	"github.com/dbx-kv/dbx/engine/vfs"
)

func TestSegGetMatchesIter(t *testing.T) {
	fs := vfs.NewMem()
	cfg := testConfig(fs)
	s := mustOpen(t, fs, "/db", cfg)
	defer s.Close()
	ctx := context.Background()
	for i := 0; i < 3000; i++ {
		var b Batch
		b.Set(uint16(i%4), []byte(fmt.Sprintf("counter-%d", i%4)), []byte(fmt.Sprint(i)))
		b.Set(uint16(10+i%4), fmt.Appendf(nil, "filler-%d", i), make([]byte, 200))
		if err := s.Write(ctx, &b); err != nil {
			t.Fatal(err)
		}
		if i%500 == 0 {
			s.Compact(ctx)
		}
	}
	s.Flush(ctx)
	bad := 0
	for _, sh := range s.shards {
		rs := sh.loadReadState()
		for _, f := range append(append([]*fileMeta{}, rs.v.l0...), rs.v.l1...) {
			r, rel, err := s.tables.Acquire(f.Num)
			if err != nil {
				t.Fatal(err)
			}
			it := r.NewIter()
			n := 0
			for ok := it.First(); ok; ok = it.Next() {
				k := it.Key()
				n++
				v, kind, found, err := r.Get(k.UserKey, base.SeqMax)
				if err != nil || !found || kind != k.Kind || string(v) != string(it.Value()) {
					if bad < 10 {
						t.Errorf("file %d entry %d %s: Get = %q %v %v %v; iter value %q", f.Num, n, k, v, kind, found, err, it.Value())
					}
					bad++
				}
				if !r.MayContain(k.UserKey) {
					t.Errorf("bloom false negative for %s", k)
				}
			}
			it.Close()
			rel()
		}
		rs.unref()
	}
	if bad > 0 {
		t.Fatalf("%d mismatches", bad)
	}
}
