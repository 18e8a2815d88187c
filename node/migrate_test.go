package node

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/dbx-kv/dbx/engine"
	"github.com/dbx-kv/dbx/rebalancer"
	"github.com/dbx-kv/dbx/router"
)

// TestMigScanPages: a move's snapshot served in small pages — continued
// from the kept iterator, asked again (a retried page), or from a fresh
// seek — yields every entry of the move's buckets exactly once, in order,
// and nothing of other buckets.
func TestMigScanPages(t *testing.T) {
	n := testNode(t, "n1", nil)
	ctx := context.Background()
	moved := map[uint16]bool{}
	var want []string
	var b engine.Batch
	for i := 0; i < 3000; i++ {
		k := fmt.Sprintf("key-%05d", i)
		bk := router.BucketString(k)
		b.Set(bk, []byte(k), []byte(fmt.Sprintf("value-%d-%0100d", i, i)))
		if bk%3 == 0 {
			moved[bk] = true
			want = append(want, fmt.Sprintf("%05d/%s", bk, k))
		}
	}
	if err := n.store.Write(ctx, &b); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	sn, err := n.store.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buckets []uint16
	for b := range moved {
		buckets = append(buckets, b)
	}
	slices.Sort(buckets)
	v := oneMoveView{rebalancer.Move{Token: "t1", From: "n1", To: "n2", Buckets: buckets}}
	n.mig.mu.Lock()
	gen, _, err := n.mig.l.Begin(v, "t1", buckets)
	if err != nil || !n.mig.l.Snapshotted("t1", gen) {
		t.Fatalf("begin: %v", err)
	}
	om := &outSnap{gen: gen, buckets: buckets, snap: sn}
	n.mig.snaps["t1"] = om
	n.mig.mu.Unlock()
	defer n.mig.step(func(l *rebalancer.Local) []rebalancer.Effect { return l.Abort("t1") })

	var got []string
	req := &migScanReq{Token: "t1", MaxBytes: 4096}
	for page := 0; page < 10_000; page++ {
		r, err := n.mig.handleScan(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		switch page % 7 {
		case 3: // the answer was lost: the same page again must be the same
			again, err := n.mig.handleScan(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if len(again.Entries) != len(r.Entries) || (len(r.Entries) > 0 && string(again.Entries[0].Key) != string(r.Entries[0].Key)) {
				t.Fatalf("page %d asked again: %d entries from %q, first time %d", page, len(again.Entries), again.Entries[0].Key, len(r.Entries))
			}
		case 5: // a fresh iterator, positioned by seeking
			om.scanMu.Lock()
			om.it.Close()
			om.it = nil
			om.scanMu.Unlock()
		}
		for _, e := range r.Entries {
			if !moved[e.Bucket] {
				t.Fatalf("entry of bucket %d, not in the move", e.Bucket)
			}
			got = append(got, fmt.Sprintf("%05d/%s", e.Bucket, e.Key))
		}
		if r.Done {
			break
		}
		last := r.Entries[len(r.Entries)-1]
		req = &migScanReq{Token: "t1", Bucket: last.Bucket, After: last.Key, Started: true, MaxBytes: 4096}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("scanned %d entries, want %d (first difference at %d)", len(got), len(want), firstDiff(got, want))
	}
}

// oneMoveView is a View with one move and no placement.
type oneMoveView struct{ mv rebalancer.Move }

func (v oneMoveView) Index() uint64            { return 1 }
func (v oneMoveView) Table() *router.Table     { return nil }
func (v oneMoveView) Target() *router.Table    { return nil }
func (v oneMoveView) Moves() []rebalancer.Move { return []rebalancer.Move{v.mv} }
func (v oneMoveView) Pending() []uint16        { return nil }
func (v oneMoveView) Move(tok string) (rebalancer.Move, bool) {
	return v.mv, tok == v.mv.Token
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
