package node

import (
	"context"
	"fmt"
	"sync"

	"github.com/dbx-kv/dbx/kv"
	"github.com/dbx-kv/dbx/router"
	"github.com/dbx-kv/dbx/server"
	"github.com/dbx-kv/dbx/transport"
)

// Cluster-wide SCAN and DBSIZE.
//
// A SCAN cursor is a bucket number: every bucket below it has been
// visited. A call at cursor c asks every owner, in parallel, to scan its
// own buckets from c upward (ranges from this node's table) until it has
// visited COUNT keys, finishing the bucket it is in; each answers the first
// bucket it did not visit. The new cursor is the least of those: every
// bucket below it was visited whole by its owner, so the keys of those
// buckets are returned and the rest dropped (they come again next call).
// Each bucket is read at its owner only (never a migration target's copy),
// and the owner checks it still owns every bucket it is asked for
// (ErrNotOwner: the call runs again with the newer table), so a key present
// for the whole scan is returned once, and exactly once while no bucket
// moves.
//
// On the port cluster-aware clients use (ServeNodeScope), ScanNode and
// DBSizeNode cover this node's own buckets only, with the same cursors.

const (
	methodScanRanges  = "kv.scanranges"
	methodCountRanges = "kv.countranges"
)

type (
	scanRangesReq struct {
		Ranges  []server.BucketRange
		Pattern []byte
		Count   int
	}
	scanRangesResp struct {
		Stop int
		Keys [][]byte
	}
	countRangesReq struct{ Ranges []server.BucketRange }
	// countRangesResp: N keys; Expires of them with an expiry, TTLSumMs
	// the sum of their time left (0 from a node older than INFO keyspace's
	// expires).
	countRangesResp struct{ N, Expires, TTLSumMs int64 }
)

// ownedFrom is every node's bucket ranges at or above from under t.
func ownedFrom(t *router.Table, from int) map[string][]server.BucketRange {
	out := map[string][]server.BucketRange{}
	for _, id := range t.Nodes() {
		var rs []server.BucketRange
		for _, r := range server.Ranges(t.BucketsOf(id)) {
			if int(r.End) < from {
				continue
			}
			if int(r.Start) < from {
				r.Start = uint16(from)
			}
			rs = append(rs, r)
		}
		if len(rs) > 0 {
			out[id] = rs
		}
	}
	return out
}

// checkOwnedRanges fails with ErrNotOwner unless this node owns every
// bucket of ranges under its applied table.
func (b *backend) checkOwnedRanges(ranges []server.BucketRange) error {
	if len(ranges) > router.NumBuckets {
		return fmt.Errorf("node: %d bucket ranges", len(ranges))
	}
	t, err := b.table()
	if err != nil {
		return err
	}
	for _, r := range ranges {
		if r.Start > r.End || int(r.End) >= router.NumBuckets {
			return fmt.Errorf("node: bad bucket range [%d, %d]", r.Start, r.End)
		}
		for bk := int(r.Start); bk <= int(r.End); bk++ {
			if o := t.OwnerOfBucket(uint16(bk)); o != b.n.cfg.ID {
				return fmt.Errorf("%w: bucket %d belongs to %s at epoch %d", ErrNotOwner, bk, o, t.Epoch())
			}
		}
	}
	return nil
}

// Scan implements server.Backend over the whole cluster (see above).
func (b *backend) Scan(ctx context.Context, cursor uint64, pattern []byte, count int) (uint64, [][]byte, error) {
	if cursor >= router.NumBuckets {
		return 0, nil, nil
	}
	var next uint64
	var keys [][]byte
	err := b.retryMoved(ctx, func() error {
		var err error
		next, keys, err = b.scanOnce(ctx, int(cursor), pattern, count, false)
		return err
	})
	return next, keys, err
}

// ScanNode implements server.NodeScanner: this node's own buckets.
func (b *backend) ScanNode(ctx context.Context, cursor uint64, pattern []byte, count int) (uint64, [][]byte, error) {
	if cursor >= router.NumBuckets {
		return 0, nil, nil
	}
	var next uint64
	var keys [][]byte
	err := b.retryMoved(ctx, func() error {
		var err error
		next, keys, err = b.scanOnce(ctx, int(cursor), pattern, count, true)
		return err
	})
	return next, keys, err
}

func (b *backend) scanOnce(ctx context.Context, from int, pattern []byte, count int, selfOnly bool) (uint64, [][]byte, error) {
	t, err := b.table()
	if err != nil {
		return 0, nil, err
	}
	owned := ownedFrom(t, from)
	if selfOnly {
		owned = map[string][]server.BucketRange{b.n.cfg.ID: owned[b.n.cfg.ID]}
	}
	type part struct {
		stop int
		keys [][]byte
	}
	parts := map[string]part{}
	var mu sync.Mutex
	err = b.eachOwner(ctx, owned, func(id, addr string, rs []server.BucketRange) error {
		var p part
		if len(rs) == 0 {
			p.stop = router.NumBuckets
		} else if addr == "" {
			if err := b.checkOwnedRanges(rs); err != nil {
				return err
			}
			stop, keys, err := b.local.ScanRanges(ctx, rs, pattern, count)
			if err != nil {
				return err
			}
			p = part{stop, keys}
		} else {
			r, err := call[scanRangesReq, scanRangesResp](ctx, b, addr, methodScanRanges, &scanRangesReq{Ranges: rs, Pattern: pattern, Count: count})
			if err != nil {
				return remoteErr(id, addr, err)
			}
			p = part{r.Stop, r.Keys}
		}
		mu.Lock()
		parts[id] = p
		mu.Unlock()
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	stop := router.NumBuckets
	for _, p := range parts {
		stop = min(stop, p.stop)
	}
	var keys [][]byte
	for _, id := range t.Nodes() { // a stable order
		for _, k := range parts[id].keys {
			if int(router.Bucket(k)) < stop {
				keys = append(keys, k)
			}
		}
	}
	if stop >= router.NumBuckets {
		return 0, keys, nil
	}
	return uint64(stop), keys, nil
}

// DBSize implements server.Backend: the keys of the whole cluster, each
// counted at its bucket's owner.
func (b *backend) DBSize(ctx context.Context) (int64, error) { return b.dbSize(ctx, false) }

// DBSizeNode implements server.NodeScanner: the keys of this node's own
// buckets.
func (b *backend) DBSizeNode(ctx context.Context) (int64, error) { return b.dbSize(ctx, true) }

func (b *backend) dbSize(ctx context.Context, selfOnly bool) (int64, error) {
	c, err := b.keyCounts(ctx, selfOnly)
	return c.Keys, err
}

// Keyspace implements server.KeyspaceCounter (INFO keyspace): the keys and
// expiries of the whole cluster, or of this node's buckets (nodeScope).
func (b *backend) Keyspace(ctx context.Context, nodeScope bool) (server.KeyspaceInfo, error) {
	c, err := b.keyCounts(ctx, nodeScope)
	ks := server.KeyspaceInfo{Keys: c.Keys, Expires: c.Expires}
	if c.Expires > 0 {
		ks.AvgTTLMs = c.TTLSumMs / c.Expires
	}
	return ks, err
}

func (b *backend) keyCounts(ctx context.Context, selfOnly bool) (kv.KeyCounts, error) {
	var total kv.KeyCounts
	err := b.retryMoved(ctx, func() error {
		t, err := b.table()
		if err != nil {
			return err
		}
		owned := ownedFrom(t, 0)
		if selfOnly {
			owned = map[string][]server.BucketRange{b.n.cfg.ID: owned[b.n.cfg.ID]}
		}
		var mu sync.Mutex
		var sum kv.KeyCounts
		err = b.eachOwner(ctx, owned, func(id, addr string, rs []server.BucketRange) error {
			var n kv.KeyCounts
			if len(rs) == 0 {
				return nil
			} else if addr == "" {
				if err := b.checkOwnedRanges(rs); err != nil {
					return err
				}
				if n, err = b.local.CountKeys(ctx, rs); err != nil {
					return err
				}
			} else {
				r, err := call[countRangesReq, countRangesResp](ctx, b, addr, methodCountRanges, &countRangesReq{Ranges: rs})
				if err != nil {
					return remoteErr(id, addr, err)
				}
				n = kv.KeyCounts{Keys: r.N, Expires: r.Expires, TTLSumMs: r.TTLSumMs}
			}
			mu.Lock()
			sum.Keys += n.Keys
			sum.Expires += n.Expires
			sum.TTLSumMs += n.TTLSumMs
			mu.Unlock()
			return nil
		})
		total = sum
		return err
	})
	return total, err
}

// eachOwner runs f for every owner of owned in parallel, with its RPC
// address ("" for this node).
func (b *backend) eachOwner(ctx context.Context, owned map[string][]server.BucketRange, f func(id, addr string, rs []server.BucketRange) error) error {
	var groups []*group
	for id := range owned {
		g := &group{id: id}
		if id != b.n.cfg.ID {
			m, ok := b.n.peer(id)
			if !ok || m.RPCAddr == "" {
				return fmt.Errorf("%w: no address for owner %s", server.ErrOwnerDown, id)
			}
			g.addr = m.RPCAddr
		}
		groups = append(groups, g)
	}
	if len(groups) == 0 {
		return nil
	}
	return fanOut(groups, func(g *group) error { return f(g.id, g.addr, owned[g.id]) })
}

// registerScan installs the scan methods served to other nodes.
func (b *backend) registerScan(r *transport.Router) {
	transport.Register(r, methodScanRanges, func(ctx context.Context, req *scanRangesReq) (*scanRangesResp, error) {
		if err := b.checkOwnedRanges(req.Ranges); err != nil {
			return nil, err
		}
		if len(req.Pattern) > server.ScanPatternBytesMax || req.Count < 1 || req.Count > server.ScanCountMax {
			return nil, fmt.Errorf("node: bad scan request (pattern %d bytes, count %d)", len(req.Pattern), req.Count)
		}
		stop, keys, err := b.local.ScanRanges(ctx, req.Ranges, req.Pattern, req.Count)
		if err != nil {
			return nil, err
		}
		return &scanRangesResp{Stop: stop, Keys: keys}, nil
	})
	transport.Register(r, methodCountRanges, func(ctx context.Context, req *countRangesReq) (*countRangesResp, error) {
		if err := b.checkOwnedRanges(req.Ranges); err != nil {
			return nil, err
		}
		c, err := b.local.CountKeys(ctx, req.Ranges)
		if err != nil {
			return nil, err
		}
		return &countRangesResp{N: c.Keys, Expires: c.Expires, TTLSumMs: c.TTLSumMs}, nil
	})
}
