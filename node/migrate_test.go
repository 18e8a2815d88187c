package node

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/dbx-kv/dbx/engine"
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
	om := &outMove{token: "t1", buckets: moved, snap: sn, dirty: map[string]uint16{}}
	n.mig.mu.Lock()
	n.mig.out["t1"] = om
	n.mig.mu.Unlock()
	defer n.mig.endOut(om, false)

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

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
