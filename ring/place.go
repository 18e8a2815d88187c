package ring

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
)

// placement is a computed assignment.
type placement struct {
	owners      []uint16 // NumBuckets × RF node indices
	displaced   int
	totalWeight float64
}

const (
	// candidatesFast is the number of distinct nodes, clockwise from a
	// bucket's point, that the bucket may be placed on in the fast path.
	// 4, 8 and 16 gave the same movement and balance figures over 100
	// random clusters of 3–64 nodes: the load corrections are local.
	candidatesFast = 4
	// candidatesMax is the largest candidate list the fallback tries.
	candidatesMax = 64
	// costShift scales ring distances (64-bit) down to costs, so that sums
	// of costs along paths and potentials fit in an int64.
	costShift = 20
)

// walkMax bounds the points walked per bucket to find its candidates in the
// fast path (it matters only for very uneven weights). A variable so that
// tests can force the fallback.
var walkMax = 4096

// errInfeasible is returned when no assignment within the bounds is
// reachable with candidatesMax candidates per bucket; it can only happen
// with more than candidatesMax nodes and absurd weights.
var errInfeasible = errors.New("no placement satisfies the load bounds with the allowed candidates")

// place computes the assignment for the ID-sorted, validated nodes. If
// prev is not nil, prev[b] is bucket b's previous primary (an index into
// nodes, or −1 if it is no longer a member) and the placement is computed
// from it (see withPrevious).
func place(cfg Config, nodes []Node, prev []int32) (placement, error) {
	n := len(nodes)
	total := 0.0
	for _, nd := range nodes {
		total += nd.Weight
	}
	ph, pn := buildPoints(cfg.VnodesPerNode, nodes)
	lo, hi := bounds(nodes, total, cfg.LoadEpsilon)

	// Fast path: walk the ring for a few candidates per bucket. If some
	// bound cannot be met with them (only with very uneven weights or very
	// few points), search exactly, then with more candidates.
	var s *solver
	cs := walkCandidates(ph, pn, min(n, candidatesFast))
	for {
		use := cs
		if prev != nil {
			use = withPrevious(cs, prev)
		}
		s = newSolver(n, use, lo, hi)
		if s.run() {
			break
		}
		k := cs.k
		if cs.complete {
			if k >= min(n, candidatesMax) {
				return placement{}, fmt.Errorf("%w: %w (%d nodes; raise VnodesPerNode or LoadEpsilon)", ErrBadConfig, errInfeasible, n)
			}
			k = min(n, candidatesMax, max(2*k, 8))
		}
		cs = exactCandidates(ph, pn, n, k)
	}
	if invariants {
		s.check()
	}

	rf := cfg.RF
	owners := make([]uint16, NumBuckets*rf)
	displaced := 0
	for b := 0; b < NumBuckets; b++ {
		p := s.owner[b]
		owners[b*rf] = p
		if s.slot[b] != 0 {
			displaced++
		}
		if rf > 1 {
			replicas(ph, pn, b, p, owners[b*rf+1:(b+1)*rf])
		}
	}
	return placement{owners: owners, displaced: displaced, totalWeight: total}, nil
}

// buildPoints returns the ring: point hashes in ascending order and the node
// index of each point. Equal hashes are ordered by node index (node ID).
func buildPoints(vnodes int, nodes []Node) ([]uint64, []uint16) {
	total := 0
	for _, nd := range nodes {
		total += numPoints(vnodes, nd.Weight)
	}
	h := make([]uint64, 0, total)
	o := make([]uint16, 0, total)
	for i, nd := range nodes {
		prefix := idHash(nd.ID)
		for j := range numPoints(vnodes, nd.Weight) {
			h = append(h, pointHashFrom(prefix, uint64(j)))
			o = append(o, uint16(i))
		}
	}
	sortPoints(h, o)
	return h, o
}

// sortPoints sorts keys ascending, carrying vals along; equal keys keep
// their input order. Keys are uniform hashes, so one counting pass on the
// top bits spreads them into small buckets, each finished by insertion
// sort.
func sortPoints(keys []uint64, vals []uint16) {
	n := len(keys)
	if n < 2 {
		return
	}
	bits := uint(max(8, min(16, bitsLen(n))))
	shift := 64 - bits
	count := make([]int32, 1<<bits+1)
	for _, k := range keys {
		count[k>>shift+1]++
	}
	for i := 1; i < len(count); i++ {
		count[i] += count[i-1]
	}
	k2 := make([]uint64, n)
	v2 := make([]uint16, n)
	next := slices.Clone(count[:1<<bits])
	for i, k := range keys {
		d := k >> shift
		k2[next[d]] = k
		v2[next[d]] = vals[i]
		next[d]++
	}
	for d := 0; d < 1<<bits; d++ {
		lo, hi := int(count[d]), int(count[d+1])
		for i := lo + 1; i < hi; i++ {
			k, v := k2[i], v2[i]
			j := i
			for j > lo && k2[j-1] > k {
				k2[j], v2[j] = k2[j-1], v2[j-1]
				j--
			}
			k2[j], v2[j] = k, v
		}
	}
	copy(keys, k2)
	copy(vals, v2)
}

// bitsLen returns the number of bits needed to represent n.
func bitsLen(n int) int {
	b := 0
	for n > 0 {
		b++
		n >>= 1
	}
	return b
}

// bucketTable holds every bucket's ring point and the buckets in ring
// order; both are constant.
type bucketTable struct {
	point [NumBuckets]uint64
	order [NumBuckets]uint16
}

var bucketPoints = sync.OnceValue(func() *bucketTable {
	t := &bucketTable{}
	for b := range t.point {
		t.point[b] = bucketPoint(b)
		t.order[b] = uint16(b)
	}
	slices.SortFunc(t.order[:], func(a, b uint16) int { return cmp.Compare(t.point[a], t.point[b]) })
	return t
})

// firstAtOrAfter returns the index of the first point ≥ x, wrapping to 0.
func firstAtOrAfter(ph []uint64, x uint64) int {
	lo, hi := 0, len(ph)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if ph[m] < x {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(ph) {
		return 0
	}
	return lo
}

// bounds returns each node's least and greatest primary count: its fair
// share t scaled by 1∓eps, rounded inwards, and widened to contain its
// largest-remainder quota so that Σlo ≤ NumBuckets ≤ Σhi. eps = 0 gives
// exact quotas.
func bounds(nodes []Node, total, eps float64) (lo, hi []int32) {
	n := len(nodes)
	t := make([]float64, n)
	q := make([]int32, n)
	rem := make([]int, n)
	left := NumBuckets
	for i, nd := range nodes {
		// Explicit conversions keep the compiler from fusing operations,
		// so every platform rounds the same way.
		t[i] = float64(float64(NumBuckets) * nd.Weight / total)
		f := math.Floor(t[i])
		q[i] = int32(f)
		left -= int(f)
		rem[i] = i
	}
	// Largest remainders first; ties to the lower index (node ID).
	slices.SortStableFunc(rem, func(a, b int) int {
		fa, fb := t[a]-math.Floor(t[a]), t[b]-math.Floor(t[b])
		switch {
		case fa > fb:
			return -1
		case fa < fb:
			return 1
		}
		return 0
	})
	for i := 0; i < left; i++ {
		q[rem[i%n]]++
	}
	lo = make([]int32, n)
	hi = make([]int32, n)
	for i := range nodes {
		l := int32(math.Ceil(float64(t[i] * (1 - eps))))
		h := int32(math.Floor(float64(t[i] * (1 + eps))))
		lo[i] = min(max(l, 0), q[i])
		hi[i] = max(h, q[i])
	}
	return lo, hi
}

// candidates holds, for every bucket, the first k distinct nodes clockwise
// from its point and the cost of placing the bucket there (ring distance to
// that node's first point, scaled).
type candidates struct {
	k        int
	node     []uint16 // NumBuckets × k
	cost     []int64  // NumBuckets × k
	num      []uint8  // candidates found per bucket (≥ 1)
	complete bool     // every bucket has k candidates
}

func newCandidates(k int) *candidates {
	return &candidates{
		k:    k,
		node: make([]uint16, NumBuckets*k),
		cost: make([]int64, NumBuckets*k),
		num:  make([]uint8, NumBuckets),
	}
}

// walkCandidates walks the ring from each bucket's point, at most walkMax
// points, collecting up to k distinct nodes (k ≤ the number of nodes).
func walkCandidates(ph []uint64, pn []uint16, k int) *candidates {
	c := newCandidates(k)
	c.complete = true
	np := len(ph)
	steps := min(np, walkMax)
	pts := bucketPoints()
	first := 0 // first point ≥ the current bucket's point; buckets come in ring order
	for _, bp := range pts.order {
		b := int(bp)
		x := pts.point[b]
		for first < np && ph[first] < x {
			first++
		}
		p := first
		if p == np {
			p = 0
		}
		base := b * k
		got := 0
	walk:
		for s := 0; s < steps && got < k; s++ {
			nd := pn[p]
			for j := base; j < base+got; j++ {
				if c.node[j] == nd {
					p++
					if p == np {
						p = 0
					}
					continue walk
				}
			}
			c.node[base+got] = nd
			c.cost[base+got] = costOf(ph[p] - x)
			got++
			p++
			if p == np {
				p = 0
			}
		}
		c.num[b] = uint8(got)
		if got < k {
			c.complete = false
		}
	}
	return c
}

// exactCandidates finds, for each bucket, the k nearest distinct nodes
// clockwise by searching each node's own points. It costs
// NumBuckets × n × log(points) and is only the fallback.
func exactCandidates(ph []uint64, pn []uint16, n, k int) *candidates {
	per := make([][]uint64, n)
	for i, h := range ph {
		per[pn[i]] = append(per[pn[i]], h)
	}
	c := newCandidates(k)
	type cd struct {
		d    uint64
		node uint16
	}
	all := make([]cd, 0, n)
	pts := bucketPoints()
	for b := 0; b < NumBuckets; b++ {
		x := pts.point[b]
		all = all[:0]
		for i, hs := range per {
			p := firstAtOrAfter(hs, x)
			all = append(all, cd{hs[p] - x, uint16(i)})
		}
		slices.SortFunc(all, func(a, b cd) int {
			switch {
			case a.d < b.d:
				return -1
			case a.d > b.d:
				return 1
			}
			return int(a.node) - int(b.node)
		})
		for j := 0; j < k; j++ {
			c.node[b*k+j] = all[j].node
			c.cost[b*k+j] = costOf(all[j].d)
		}
		c.num[b] = uint8(k)
	}
	c.complete = true
	return c
}

// replicas fills out with the first len(out) distinct nodes clockwise from
// bucket b's point, skipping the primary p. The caller guarantees enough
// nodes exist.
func replicas(ph []uint64, pn []uint16, b int, p uint16, out []uint16) {
	np := len(ph)
	q := firstAtOrAfter(ph, bucketPoints().point[b])
	got := 0
	for s := 0; s < np && got < len(out); s++ {
		nd := pn[q]
		if nd != p && !slices.Contains(out[:got], nd) {
			out[got] = nd
			got++
		}
		q++
		if q == np {
			q = 0
		}
	}
}

const (
	// historyShift scales ring distances down to costs when placing from a
	// previous assignment: coarser than costShift, so that movePenalty
	// exceeds the distance cost of all buckets together (NumBuckets ×
	// 2^(64−historyShift) = 2^44) and fits int64 with room for paths and
	// potentials.
	historyShift = 34
	// movePenalty is the cost of placing a bucket anywhere but its previous
	// owner. It exceeds any sum of distance costs, so the solver first
	// minimises the number of buckets that move, then, among the moves, the
	// ring distance walked.
	movePenalty int64 = 1 << 44
)

// withPrevious returns cs extended for placing from a previous assignment:
// bucket b may also stay on its previous owner prev[b] (if ≥ 0), which costs
// 0, and every other candidate costs movePenalty plus its ring distance.
// The previous owner is an extra candidate after cs's if it is not one of
// them.
func withPrevious(cs *candidates, prev []int32) *candidates {
	k := cs.k + 1
	c := newCandidates(k)
	c.complete = cs.complete
	for b := 0; b < NumBuckets; b++ {
		src, dst := b*cs.k, b*k
		num := int(cs.num[b])
		p := prev[b]
		kept := false
		for j := 0; j < num; j++ {
			nd := cs.node[src+j]
			c.node[dst+j] = nd
			if int32(nd) == p {
				kept = true
			} else {
				c.cost[dst+j] = movePenalty + cs.cost[src+j]>>(historyShift-costShift)
			}
		}
		if p >= 0 && !kept {
			c.node[dst+num] = uint16(p)
			num++
		}
		c.num[b] = uint8(num)
	}
	return c
}

// costOf is the cost of placing a bucket on a node whose first point is d
// past the bucket's point (the scaled ring distance).
func costOf(d uint64) int64 {
	return int64(d >> costShift)
}
