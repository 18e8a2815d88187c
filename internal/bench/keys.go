package bench

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/dbx-kv/dbx/router"
)

// placementKeysMax bounds the key names sorted by owner for CrossNode and
// SameNode: those transactions draw from key:0 … key:min(Keys, 2²⁰)-1.
const placementKeysMax = 1 << 20

// distinctTries bounds the draws that keep a transaction's keys distinct;
// a tiny key space may leave a repeat after that many.
const distinctTries = 16

func keyName(i uint64) string { return "key:" + strconv.FormatUint(i, 10) }

// slotRange is one CLUSTER SLOTS entry: buckets start … end owned by node.
type slotRange struct {
	start, end int
	node       string
}

// placement sorts the key space by owner. It is built once before the run
// and then only read, so workers share it.
type placement struct {
	nodes []string   // owners holding at least one key, by first appearance
	pools [][]uint32 // pools[i]: indices of the keys nodes[i] owns, ascending
	zipfs []*Zipf    // per pool; nil for uniform keys
	same  []int      // pools with at least TxnKeys keys (SameNode)
}

// newPlacement maps key:0 … key:min(keys, placementKeysMax)-1 to the owners
// ranges name. Buckets no range covers are left out. It returns how many
// distinct owners the ranges name as well.
func newPlacement(ranges []slotRange, keys int64, zipfian bool, txnKeys int) (*placement, int) {
	var owner [router.NumBuckets]int16
	for i := range owner {
		owner[i] = -1
	}
	var names []string
	for _, r := range ranges {
		idx := slices.Index(names, r.node)
		if idx < 0 {
			idx = len(names)
			names = append(names, r.node)
		}
		for b := max(r.start, 0); b <= min(r.end, router.NumBuckets-1); b++ {
			owner[b] = int16(idx)
		}
	}
	pools := make([][]uint32, len(names))
	buf := make([]byte, 0, 32)
	for n := range uint64(min(keys, placementKeysMax)) {
		buf = strconv.AppendUint(append(buf[:0], "key:"...), n, 10)
		if o := owner[router.Bucket(buf)]; o >= 0 {
			pools[o] = append(pools[o], uint32(n))
		}
	}
	p := &placement{}
	for i, pool := range pools {
		if len(pool) == 0 {
			continue
		}
		if len(pool) >= txnKeys {
			p.same = append(p.same, len(p.pools))
		}
		p.nodes = append(p.nodes, names[i])
		p.pools = append(p.pools, pool)
		if zipfian {
			p.zipfs = append(p.zipfs, NewZipf(uint64(len(pool)), ZipfTheta))
		}
	}
	return p, len(names)
}

// check explains why p cannot serve cfg's transactions, or returns nil.
func (p *placement) check(cfg *Config, owners int) error {
	from := fmt.Sprintf("CLUSTER SLOTS on %s", cfg.Addrs[0])
	scanned := min(cfg.Keys, placementKeysMax)
	switch {
	case cfg.CrossNode && owners < 2:
		return fmt.Errorf("%w: cross-node: %s lists %d node(s) %s; keys on different nodes need a cluster of at least 2",
			ErrInvalidConfig, from, owners, fmtNodes(p.nodes))
	case cfg.CrossNode && len(p.pools) < 2:
		return fmt.Errorf("%w: cross-node: key:0 … key:%d all land on node %s; raise --keys",
			ErrInvalidConfig, scanned-1, fmtNodes(p.nodes))
	case cfg.SameNode && len(p.same) == 0:
		return fmt.Errorf("%w: same-node: no node of %s owns %d of key:0 … key:%d; raise --keys",
			ErrInvalidConfig, from, cfg.TxnKeys, scanned-1)
	}
	return nil
}

func fmtNodes(nodes []string) string { return "[" + strings.Join(nodes, " ") + "]" }

// draw returns a key index owned by p.nodes[node].
func (p *placement) draw(rng *rand.Rand, node int) uint64 {
	pool := p.pools[node]
	if p.zipfs != nil {
		return uint64(pool[p.zipfs[node].Next(rng)])
	}
	return uint64(pool[rng.IntN(len(pool))])
}

// txnKeys fills keys for one transaction: without a placement, keys of the
// configured distribution; with CrossNode, key j from node (s+j) mod nodes
// for a random s; with SameNode, every key from one random node (among
// those owning enough keys). Keys are distinct unless distinctTries draws
// in a row repeat.
func (w *worker) txnKeys(keys []string) {
	p := w.r.place
	switch {
	case p == nil:
		for j := range keys {
			keys[j] = distinct(keys[:j], w.nextKey)
		}
	case w.r.cfg.CrossNode:
		s := w.rng.IntN(len(p.pools))
		for j := range keys {
			node := (s + j) % len(p.pools)
			keys[j] = distinct(keys[:j], func() string { return keyName(p.draw(w.rng, node)) })
		}
	default: // SameNode
		node := p.same[w.rng.IntN(len(p.same))]
		for j := range keys {
			keys[j] = distinct(keys[:j], func() string { return keyName(p.draw(w.rng, node)) })
		}
	}
}

// distinct draws a key not in prev, at most distinctTries times.
func distinct(prev []string, draw func() string) string {
	k := draw()
	for range distinctTries - 1 {
		if !slices.Contains(prev, k) {
			break
		}
		k = draw()
	}
	return k
}
