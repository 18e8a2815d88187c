package ring

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"time"
)

// This file holds the seeded balance and movement study shared by the
// property tests and TestPlacementReport. A placer builds a primary-owner
// table from a node list; the study runs it over random clusters.

// placer computes primaries (one node ID per bucket) for a node list.
type placer interface {
	name() string
	weighted() bool // honours weights; otherwise all weights are 1
	build(nodes []Node) (primaries []string, err error)
	// displaced reports buckets not on their natural owner, or nil if the
	// placer cannot tell.
	displaced(nodes []Node, primaries []string) []bool
}

// dbxPlacer is this package's ring.
type dbxPlacer struct{ cfg Config }

func (p dbxPlacer) name() string   { return "dbx Assign" }
func (p dbxPlacer) weighted() bool { return true }

func (p dbxPlacer) build(nodes []Node) ([]string, error) {
	r, err := New(p.cfg, nodes)
	if err != nil {
		return nil, err
	}
	out := make([]string, NumBuckets)
	for b := range out {
		out[b] = r.Primary(b)
	}
	return out, nil
}

func (p dbxPlacer) displaced(nodes []Node, primaries []string) []bool {
	sorted := slices.Clone(nodes)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].ID < sorted[j].ID })
	ph, pn := buildPoints(p.cfg.VnodesPerNode, sorted)
	out := make([]bool, NumBuckets)
	for b := range out {
		out[b] = sorted[pn[firstAtOrAfter(ph, bucketPoints().point[b])]].ID != primaries[b]
	}
	return out
}

// historyPlacer is a placer that builds a changed cluster's table from the
// previous one.
type historyPlacer interface {
	placer
	buildFrom(nodes, prevNodes []Node, prev []string) ([]string, error)
}

// dbxFromPlacer is this package's ring placing changes with AssignFrom; a
// cluster's first table comes from Assign.
type dbxFromPlacer struct{ dbxPlacer }

func (p dbxFromPlacer) name() string { return "dbx AssignFrom" }

func (p dbxFromPlacer) buildFrom(nodes, prevNodes []Node, prev []string) ([]string, error) {
	r, err := New(p.cfg, nodes)
	if err != nil {
		return nil, err
	}
	pa := assignmentOf(prevNodes, prev)
	a, err := r.AssignFrom(&pa)
	if err != nil {
		return nil, err
	}
	out := make([]string, NumBuckets)
	for b := range out {
		out[b] = a.Nodes[a.Owners[b*a.RF]]
	}
	return out, nil
}

// assignmentOf turns a primary table back into an RF 1 Assignment.
func assignmentOf(nodes []Node, primaries []string) Assignment {
	ids := make([]string, len(nodes))
	for i, n := range nodes {
		ids[i] = n.ID
	}
	slices.Sort(ids)
	owners := make([]uint16, NumBuckets)
	for b, id := range primaries {
		i, _ := slices.BinarySearch(ids, id)
		owners[b] = uint16(i)
	}
	return Assignment{Nodes: ids, RF: 1, Owners: owners}
}

// studyConfig says what to run.
type studyConfig struct {
	seed     uint64
	clusters int
	minNodes int
	maxNodes int
	minW     float64
	maxW     float64
	movement bool // also run add/remove/reweight
}

func defaultStudy(clusters int) studyConfig {
	return studyConfig{seed: 1, clusters: clusters, minNodes: 3, maxNodes: 64, minW: 0.25, maxW: 4, movement: true}
}

const (
	opAdd = iota
	opRemove
	opReweight
	numOps
)

var opNames = [numOps]string{"add", "remove", "reweight"}

// opStats aggregates one kind of membership change.
type opStats struct {
	runs       int
	moved      int
	minimum    float64 // Σ theoretical minima
	ratios     []float64
	worst      float64
	worstInfo  string
	uninvolved int // moves between two nodes other than the changed one
	unforced   int // uninvolved moves of a bucket on its natural owner in both tables
}

func (o *opStats) aggregate() float64 { return float64(o.moved) / o.minimum }

func (o *opStats) quantile(q float64) float64 {
	if len(o.ratios) == 0 {
		return math.NaN()
	}
	s := slices.Clone(o.ratios)
	slices.Sort(s)
	return s[int(math.Ceil(q*float64(len(s))))-1]
}

func (o *opStats) over(limit float64) int {
	c := 0
	for _, r := range o.ratios {
		if r > limit {
			c++
		}
	}
	return c
}

// studyResult is what a study measured.
type studyResult struct {
	placer       string
	clusters     int
	worstDev     float64 // over the base clusters
	worstDevInfo string
	sumDev       float64
	nodesSeen    int
	worstDevAll  float64 // over every table built (base, add, remove, reweight)
	ops          [numOps]opStats
	builds       int
	buildTotal   time.Duration
	buildMax     time.Duration
}

func (s *studyResult) meanDev() float64 { return s.sumDev / float64(s.nodesSeen) }

// deviation returns the worst relative deviation of a node's count from its
// weight share, and the sum of deviations.
func deviation(nodes []Node, primaries []string) (worst, sum float64, who string) {
	total := 0.0
	for _, n := range nodes {
		total += n.Weight
	}
	cnt := make(map[string]int, len(nodes))
	for _, p := range primaries {
		cnt[p]++
	}
	for _, n := range nodes {
		t := n.Weight / total * NumBuckets
		d := math.Abs(float64(cnt[n.ID])-t) / t
		sum += d
		if d > worst {
			worst, who = d, fmt.Sprintf("node %s weight %.3f: %d buckets, fair share %.1f", n.ID, n.Weight, cnt[n.ID], t)
		}
	}
	return worst, sum, who
}

func share(nodes []Node, id string) float64 {
	total, w := 0.0, 0.0
	for _, n := range nodes {
		total += n.Weight
		if n.ID == id {
			w = n.Weight
		}
	}
	return w / total
}

// randomCluster draws a cluster: node count in [minNodes, maxNodes],
// weights uniform in [minW, maxW].
func randomCluster(rng *rand.Rand, sc studyConfig, trial int) []Node {
	n := sc.minNodes + rng.IntN(sc.maxNodes-sc.minNodes+1)
	nodes := make([]Node, n)
	for i := range nodes {
		nodes[i] = Node{ID: fmt.Sprintf("node-%d-%d", trial, i), Weight: randWeight(rng, sc)}
	}
	return nodes
}

func randWeight(rng *rand.Rand, sc studyConfig) float64 {
	return sc.minW + rng.Float64()*(sc.maxW-sc.minW)
}

// runStudy runs sc against p. Every placer sees the same sequence of
// clusters and changes (same seed, same draws); an unweighted placer gets
// every weight set to 1 and no reweight.
func runStudy(p placer, sc studyConfig) (*studyResult, error) {
	res := &studyResult{placer: p.name(), clusters: sc.clusters}
	equal := !p.weighted()
	build := func(nodes []Node) ([]string, error) {
		start := time.Now()
		out, err := p.build(nodes)
		d := time.Since(start)
		res.builds++
		res.buildTotal += d
		res.buildMax = max(res.buildMax, d)
		if err != nil {
			return nil, fmt.Errorf("%s: %d nodes: %w", p.name(), len(nodes), err)
		}
		w, _, _ := deviation(nodes, out)
		res.worstDevAll = max(res.worstDevAll, w)
		return out, nil
	}
	hp, fromPrev := p.(historyPlacer)
	buildFrom := func(nodes, prevNodes []Node, prev []string) ([]string, error) {
		if !fromPrev {
			return build(nodes)
		}
		start := time.Now()
		out, err := hp.buildFrom(nodes, prevNodes, prev)
		d := time.Since(start)
		res.builds++
		res.buildTotal += d
		res.buildMax = max(res.buildMax, d)
		if err != nil {
			return nil, fmt.Errorf("%s: %d nodes: %w", p.name(), len(nodes), err)
		}
		w, _, _ := deviation(nodes, out)
		res.worstDevAll = max(res.worstDevAll, w)
		return out, nil
	}
	rng := rand.New(rand.NewPCG(sc.seed, 0x5eed))
	for trial := 0; trial < sc.clusters; trial++ {
		nodes := randomCluster(rng, sc, trial)
		// Draw the changes up front so every placer sees the same ones.
		added := Node{ID: fmt.Sprintf("node-%d-new", trial), Weight: randWeight(rng, sc)}
		removed := rng.IntN(len(nodes))
		rw := rng.IntN(len(nodes))
		oldW := nodes[rw].Weight
		newW := oldW
		for newW/oldW < 1.5 && oldW/newW < 1.5 {
			newW = randWeight(rng, sc)
		}
		if equal {
			for i := range nodes {
				nodes[i].Weight = 1
			}
			added.Weight = 1
		}

		base, err := build(nodes)
		if err != nil {
			return nil, err
		}
		worst, sum, who := deviation(nodes, base)
		res.sumDev += sum
		res.nodesSeen += len(nodes)
		if worst > res.worstDev {
			res.worstDev, res.worstDevInfo = worst, fmt.Sprintf("cluster %d (%d nodes): %s", trial, len(nodes), who)
		}
		if !sc.movement {
			continue
		}
		var baseDisp []bool
		changes := []struct {
			op    int
			nodes []Node
			id    string
			min   float64
		}{
			{opAdd, append(slices.Clone(nodes), added), added.ID, 0},
			{opRemove, slices.Delete(slices.Clone(nodes), removed, removed+1), nodes[removed].ID, 0},
		}
		if !equal {
			rwNodes := slices.Clone(nodes)
			rwNodes[rw].Weight = newW
			changes = append(changes, struct {
				op    int
				nodes []Node
				id    string
				min   float64
			}{opReweight, rwNodes, nodes[rw].ID, 0})
		}
		for _, ch := range changes {
			if len(ch.nodes) == 0 {
				continue
			}
			after, err := buildFrom(ch.nodes, nodes, base)
			if err != nil {
				return nil, err
			}
			minimum := math.Abs(share(ch.nodes, ch.id)-share(nodes, ch.id)) * NumBuckets
			var afterDisp []bool
			if baseDisp == nil {
				baseDisp = p.displaced(nodes, base)
			}
			afterDisp = p.displaced(ch.nodes, after)
			moved, unin, unforced := 0, 0, 0
			for b := range base {
				if base[b] == after[b] {
					continue
				}
				moved++
				if base[b] != ch.id && after[b] != ch.id {
					unin++
					if baseDisp != nil && !baseDisp[b] && !afterDisp[b] {
						unforced++
					}
				}
			}
			o := &res.ops[ch.op]
			o.runs++
			o.moved += moved
			o.minimum += minimum
			o.uninvolved += unin
			o.unforced += unforced
			r := float64(moved) / minimum
			o.ratios = append(o.ratios, r)
			if r > o.worst {
				o.worst = r
				o.worstInfo = fmt.Sprintf("cluster %d (%d nodes) %s %s: %d moved, minimum %.1f, %d uninvolved",
					trial, len(nodes), opNames[ch.op], ch.id, moved, minimum, unin)
			}
		}
	}
	return res, nil
}

// chainResult is what a chain study measured: every cluster goes through a
// sequence of random changes, each table built from the previous one.
type chainResult struct {
	placer       string
	clusters     int
	changes      int
	worstDev     float64 // over every table of every chain
	worstDevInfo string
	sumDev       float64 // over the last table of every chain
	nodesSeen    int
	moved        int
	minimum      float64
	ratios       []float64
	worst        float64
	worstInfo    string
	uninvolved   int
	unforced     int
}

// runChain starts sc.clusters random clusters from p.build and applies
// steps random changes (add, remove or reweight one node, keeping the node
// count within [sc.minNodes, sc.maxNodes]) to each, building every table
// from the previous one.
func runChain(p historyPlacer, sc studyConfig, steps int) (*chainResult, error) {
	res := &chainResult{placer: p.name(), clusters: sc.clusters}
	rng := rand.New(rand.NewPCG(sc.seed, 0xc4a1))
	for trial := 0; trial < sc.clusters; trial++ {
		nodes := randomCluster(rng, sc, trial)
		cur, err := p.build(nodes)
		if err != nil {
			return nil, err
		}
		if w, _, who := deviation(nodes, cur); w > res.worstDev {
			res.worstDev, res.worstDevInfo = w, fmt.Sprintf("cluster %d first table: %s", trial, who)
		}
		curDisp := p.displaced(nodes, cur)
		for step := 0; step < steps; step++ {
			op := rng.IntN(numOps)
			if op == opAdd && len(nodes) >= sc.maxNodes {
				op = opRemove
			}
			if op == opRemove && len(nodes) <= sc.minNodes {
				op = opAdd
			}
			next := slices.Clone(nodes)
			var id string
			switch op {
			case opAdd:
				id = fmt.Sprintf("node-%d-c%d", trial, step)
				next = append(next, Node{ID: id, Weight: randWeight(rng, sc)})
			case opRemove:
				i := rng.IntN(len(nodes))
				id = nodes[i].ID
				next = slices.Delete(next, i, i+1)
			case opReweight:
				i := rng.IntN(len(nodes))
				id = nodes[i].ID
				oldW, newW := nodes[i].Weight, nodes[i].Weight
				for newW/oldW < 1.5 && oldW/newW < 1.5 {
					newW = randWeight(rng, sc)
				}
				next[i].Weight = newW
			}
			after, err := p.buildFrom(next, nodes, cur)
			if err != nil {
				return nil, fmt.Errorf("cluster %d step %d: %w", trial, step, err)
			}
			afterDisp := p.displaced(next, after)
			moved, unin, unforced := 0, 0, 0
			for b := range cur {
				if cur[b] == after[b] {
					continue
				}
				moved++
				if cur[b] != id && after[b] != id {
					unin++
					if !curDisp[b] && !afterDisp[b] {
						unforced++
					}
				}
			}
			minimum := math.Abs(share(next, id)-share(nodes, id)) * NumBuckets
			r := float64(moved) / minimum
			res.changes++
			res.moved += moved
			res.minimum += minimum
			res.uninvolved += unin
			res.unforced += unforced
			res.ratios = append(res.ratios, r)
			if r > res.worst {
				res.worst, res.worstInfo = r, fmt.Sprintf("cluster %d step %d (%d nodes) %s %s: %d moved, minimum %.1f, %d uninvolved",
					trial, step, len(nodes), opNames[op], id, moved, minimum, unin)
			}
			if w, _, who := deviation(next, after); w > res.worstDev {
				res.worstDev, res.worstDevInfo = w, fmt.Sprintf("cluster %d after step %d: %s", trial, step, who)
			}
			nodes, cur, curDisp = next, after, afterDisp
		}
		_, sum, _ := deviation(nodes, cur)
		res.sumDev += sum
		res.nodesSeen += len(nodes)
	}
	return res, nil
}

func (c *chainResult) over(limit float64) int {
	o := opStats{ratios: c.ratios}
	return o.over(limit)
}

func (c *chainResult) quantile(q float64) float64 {
	o := opStats{ratios: c.ratios}
	return o.quantile(q)
}
