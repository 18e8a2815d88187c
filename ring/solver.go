package ring

import "math"

// solver places every bucket on one of its candidates so that every node's
// count lies within [lo, hi], minimising the total cost (the ring distance
// walked past the natural owner; placing from a previous assignment, see
// withPrevious, also a penalty for every bucket moved). It is a min-cost
// flow solved by successive shortest paths:
//
//   - Start from every bucket on its cheapest candidate (the natural owner,
//     or the previous owner when placing from a previous assignment),
//     which is optimal without bounds.
//   - The residual graph has a vertex per node plus a sink T. Moving a
//     bucket b held by y to candidate z is an edge y→z of cost
//     cost(b,z) − cost(b,y); for each ordered pair (y,z) only the cheapest
//     such bucket matters, kept in a lazy min-heap per pair. A node below hi
//     has an edge to T, a node above lo an edge from T, both of cost 0.
//   - Each node above hi sends its excess to T, and each node below lo
//     receives its deficit from T, one bucket at a time, along a shortest
//     path found by Dijkstra on reduced costs (potentials keep them ≥ 0;
//     the search stops at T). Moving the buckets along the path changes no
//     count but the two ends.
//
// Everything is indexed by node index and bucket number and broken by them
// on ties, so the result is deterministic.
type solver struct {
	n    int
	c    *candidates
	lo   []int32
	hi   []int32
	cnt  []int32
	pot  []int64 // potentials; index n is T
	slot []uint8 // candidate index of each bucket's current owner

	owner []uint16

	pairOf   []int32 // n×n → pair index, −1 if none
	pairFrom []uint16
	pairTo   []uint16
	heaps    [][]entry
	adj      [][]int32 // pairs by source node
	radj     [][]int32 // pairs by target node

	// Dijkstra scratch, indexed by vertex (n is T).
	dist     []int64
	done     []bool
	prevPair []int32 // pair used to reach the vertex, −1 for a T edge
	prevV    []int32
	pq       []qitem
	path     []hop
	pushing  bool // heaps are built: addEntries pushes instead of appending
}

// hop is one bucket move along an augmenting path.
type hop struct {
	b  int32
	to uint16
}

// entry is a bucket held by a pair's source that could move to its target,
// with the raw cost difference of the move.
type entry struct {
	c int64
	b int32
}

func (a entry) less(b entry) bool {
	if a.c != b.c {
		return a.c < b.c
	}
	return a.b < b.b
}

type qitem struct {
	d int64
	v int32
}

func (a qitem) less(b qitem) bool {
	if a.d != b.d {
		return a.d < b.d
	}
	return a.v < b.v
}

const inf = math.MaxInt64 / 4

func newSolver(n int, c *candidates, lo, hi []int32) *solver {
	s := &solver{
		n:        n,
		c:        c,
		lo:       lo,
		hi:       hi,
		cnt:      make([]int32, n),
		pot:      make([]int64, n+1),
		slot:     make([]uint8, NumBuckets),
		owner:    make([]uint16, NumBuckets),
		dist:     make([]int64, n+1),
		done:     make([]bool, n+1),
		prevPair: make([]int32, n+1),
		prevV:    make([]int32, n+1),
	}
	// Start from every bucket's cheapest candidate, the first on ties
	// (without a previous assignment that is the natural owner).
	for b := 0; b < NumBuckets; b++ {
		base := b * c.k
		j0 := 0
		for j := 1; j < int(c.num[b]); j++ {
			if c.cost[base+j] < c.cost[base+j0] {
				j0 = j
			}
		}
		o := c.node[base+j0]
		s.owner[b] = o
		s.slot[b] = uint8(j0)
		s.cnt[o]++
	}
	return s
}

// run fixes every bound violation. It reports false if some violation
// cannot be fixed with the candidates given.
func (s *solver) run() bool {
	violated := false
	for i := 0; i < s.n; i++ {
		if s.cnt[i] > s.hi[i] || s.cnt[i] < s.lo[i] {
			violated = true
			break
		}
	}
	if !violated {
		return true
	}
	s.buildPairs()
	for v := 0; v < s.n; v++ {
		for s.cnt[v] > s.hi[v] {
			if !s.augment(v, true) {
				return false
			}
		}
	}
	for v := 0; v < s.n; v++ {
		for s.cnt[v] < s.lo[v] {
			if !s.augment(v, false) {
				return false
			}
		}
	}
	return true
}

func (s *solver) buildPairs() {
	n := s.n
	s.pairOf = make([]int32, n*n)
	for i := range s.pairOf {
		s.pairOf[i] = -1
	}
	s.adj = make([][]int32, n)
	s.radj = make([][]int32, n)
	for b := 0; b < NumBuckets; b++ {
		s.addEntries(b)
	}
	for _, h := range s.heaps {
		heapify(h)
	}
	s.pushing = true
}

// pair returns the pair index of (y, z), creating it if needed.
func (s *solver) pair(y, z uint16) int32 {
	i := int(y)*s.n + int(z)
	if p := s.pairOf[i]; p >= 0 {
		return p
	}
	p := int32(len(s.heaps))
	s.pairOf[i] = p
	s.pairFrom = append(s.pairFrom, y)
	s.pairTo = append(s.pairTo, z)
	s.heaps = append(s.heaps, nil)
	s.adj[y] = append(s.adj[y], p)
	s.radj[z] = append(s.radj[z], p)
	return p
}

// addEntries records, for bucket b at its current owner, the moves to its
// other candidates. During buildPairs the heaps are heapified afterwards;
// later it pushes.
func (s *solver) addEntries(b int) {
	k := s.c.k
	base := b * k
	y := s.owner[b]
	cy := s.c.cost[base+int(s.slot[b])]
	for j := 0; j < int(s.c.num[b]); j++ {
		z := s.c.node[base+j]
		if z == y {
			continue
		}
		p := s.pair(y, z)
		e := entry{s.c.cost[base+j] - cy, int32(b)}
		if s.pushing {
			s.heaps[p] = push(s.heaps[p], e)
		} else {
			s.heaps[p] = append(s.heaps[p], e) // heapified by buildPairs
		}
	}
}

// top returns the cheapest bucket of pair p still held by its source,
// dropping stale entries.
func (s *solver) top(p int32) (entry, bool) {
	h := s.heaps[p]
	y := s.pairFrom[p]
	for len(h) > 0 {
		if s.owner[h[0].b] == y {
			s.heaps[p] = h
			return h[0], true
		}
		h = pop(h)
	}
	s.heaps[p] = h
	return entry{}, false
}

func (s *solver) move(b int32, z uint16) {
	s.cnt[s.owner[b]]--
	s.owner[b] = z
	s.cnt[z]++
	base := int(b) * s.c.k
	for j := 0; j < int(s.c.num[b]); j++ {
		if s.c.node[base+j] == z {
			s.slot[b] = uint8(j)
			break
		}
	}
	s.addEntries(int(b))
}

// augment moves one bucket's worth of flow: out of v (v above hi) to T if
// forward, else from T into v (v below lo).
func (s *solver) augment(v int, forward bool) bool {
	n := s.n
	T := int32(n)
	for i := 0; i <= n; i++ {
		s.dist[i] = inf
		s.done[i] = false
		s.prevPair[i] = -1
		s.prevV[i] = -1
	}
	s.dist[v] = 0
	s.pq = append(s.pq[:0], qitem{0, int32(v)})
	relax := func(to int32, d int64, via int32, from int32) {
		if d < s.dist[to] {
			s.dist[to] = d
			s.prevPair[to] = via
			s.prevV[to] = from
			s.pq = push(s.pq, qitem{d, to})
		}
	}
	found := false
	for len(s.pq) > 0 {
		it := s.pq[0]
		s.pq = pop(s.pq)
		u := it.v
		if s.done[u] || it.d != s.dist[u] {
			continue
		}
		s.done[u] = true
		if u == T {
			found = true
			break
		}
		d := it.d
		if forward {
			if s.cnt[u] < s.hi[u] {
				relax(T, d+s.pot[u]-s.pot[T], -1, u)
			}
			for _, p := range s.adj[u] {
				z := int32(s.pairTo[p])
				if s.done[z] {
					continue
				}
				if e, ok := s.top(p); ok {
					relax(z, d+e.c+s.pot[u]-s.pot[z], p, u)
				}
			}
		} else {
			if s.cnt[u] > s.lo[u] {
				relax(T, d+s.pot[T]-s.pot[u], -1, u)
			}
			for _, p := range s.radj[u] {
				y := int32(s.pairFrom[p])
				if s.done[y] {
					continue
				}
				if e, ok := s.top(p); ok {
					relax(y, d+e.c+s.pot[y]-s.pot[u], p, u)
				}
			}
		}
	}
	if !found {
		return false
	}
	// Update potentials so reduced costs stay non-negative:
	// π(x) ±= min(dist(x), D).
	D := s.dist[T]
	for i := 0; i <= n; i++ {
		d := D
		if s.done[i] && s.dist[i] < D {
			d = s.dist[i]
		}
		if forward {
			s.pot[i] += d
		} else {
			s.pot[i] -= d
		}
	}
	pT := s.pot[T]
	for i := range s.pot {
		s.pot[i] -= pT
	}
	// Walk the search tree back from T to v. Each hop x → prevV[x] used
	// pair prevPair[x], whose bucket moves to the pair's target (the vertex
	// nearer T going forward, nearer v going backward). Collect every hop's
	// bucket before moving any, so no bucket is picked twice.
	s.path = s.path[:0]
	for x := s.prevV[T]; x != int32(v); x = s.prevV[x] {
		p := s.prevPair[x]
		e, _ := s.top(p)
		s.path = append(s.path, hop{e.b, s.pairTo[p]})
	}
	for _, h := range s.path {
		s.move(h.b, h.to)
	}
	return true
}

// check panics if the solution breaks a bound or is not optimal (some
// residual edge has negative reduced cost). Used with -tags invariants.
func (s *solver) check() {
	for i := 0; i < s.n; i++ {
		if s.cnt[i] < s.lo[i] || s.cnt[i] > s.hi[i] {
			panic("ring: invariant: node count out of bounds")
		}
	}
	if s.pairOf == nil {
		return
	}
	T := s.n
	for i := 0; i < s.n; i++ {
		if s.cnt[i] < s.hi[i] && s.pot[i]-s.pot[T] < 0 {
			panic("ring: invariant: negative reduced cost to T")
		}
		if s.cnt[i] > s.lo[i] && s.pot[T]-s.pot[i] < 0 {
			panic("ring: invariant: negative reduced cost from T")
		}
	}
	for p := range s.heaps {
		if e, ok := s.top(int32(p)); ok {
			if e.c+s.pot[s.pairFrom[p]]-s.pot[s.pairTo[p]] < 0 {
				panic("ring: invariant: negative reduced cost")
			}
		}
	}
}

// Binary min-heaps over slices, shared by the per-pair entry heaps and
// Dijkstra's queue.
type lesser[T any] interface{ less(T) bool }

func heapify[T lesser[T]](h []T) {
	for i := len(h)/2 - 1; i >= 0; i-- {
		down(h, i)
	}
}

func down[T lesser[T]](h []T, i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r].less(h[l]) {
			m = r
		}
		if !h[m].less(h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

func push[T lesser[T]](h []T, e T) []T {
	h = append(h, e)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h[i].less(h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	return h
}

func pop[T lesser[T]](h []T) []T {
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	down(h, 0)
	return h
}
