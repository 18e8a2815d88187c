package ring

import (
	"flag"
	"fmt"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"
	"time"
)

var report = flag.Bool("report", false, "run TestPlacementReport's full 1,000-cluster study and print it (make bench-placement)")

// TestPlacementReport compares the ring with github.com/buraksezer/consistent
// v1.0.0 on the same random clusters: balance (deviation of each node's
// bucket count from its fair share), movement on adding, removing and
// reweighting one node (buckets moved ÷ the theoretical minimum |Δshare| ×
// 16384, and moves between uninvolved nodes), and build time. The dbx ring
// runs twice: "dbx Assign" computes every table from scratch, "dbx
// AssignFrom" computes the changed cluster's table from the previous one
// (what the Raft leader does). consistent has no weights, so it (and a dbx
// AssignFrom column for comparison) runs with all weights 1 and no
// reweight. Below the table, chains of 20 random changes, each table
// computed with AssignFrom from the previous one, show that the placement
// does not drift.
//
// With -report it runs 1,000 clusters per column (250 for consistent with
// 1,024 points per member, whose builds take ~70 ms: the first 250 of the
// same clusters) and 100 chains, and prints the table; without, a small
// version whose dbx figures are still checked against the targets.
func TestPlacementReport(t *testing.T) {
	clusters, baseline, slowBaseline, chains := clustersFor(30), 3, 3, chainsFor(5)
	if *report {
		clusters, baseline, slowBaseline, chains = 1000, 1000, 250, 100
	}
	dbx := dbxPlacer{DefaultConfig()}
	from := dbxFromPlacer{dbx}
	type column struct {
		p        placer
		clusters int
		equal    bool
	}
	cols := []column{
		{dbx, clusters, false},
		{from, clusters, false},
		{equalWeightsFrom{from}, clusters, true},
		{consistentPlacer{replication: 20, load: 1.25}, baseline, true},
		{consistentPlacer{replication: DefaultConfig().VnodesPerNode, load: 1.25}, slowBaseline, true},
	}
	if raceEnabled && !*report {
		// Under -race keep one column of each kind (the equal-weight dbx
		// column repeats the weighted one, and consistent with 1024 points
		// per member is slow) and no chains.
		cols = []column{cols[0], cols[1], cols[3]}
		chains = 0 // TestPropertyChain runs chains
	}
	var results []*studyResult
	var build64 []time.Duration
	for _, c := range cols {
		sc := defaultStudy(c.clusters)
		start := time.Now()
		res, err := runStudy(c.p, sc)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d clusters in %v", res.placer, c.clusters, time.Since(start).Round(time.Millisecond))
		results = append(results, res)
		build64 = append(build64, medianBuild(t, c.p, 64, c.equal))
	}
	var chain *chainResult
	sc := defaultStudy(chains)
	if chains > 0 {
		start := time.Now()
		var err error
		if chain, err = runChain(from, sc, chainSteps); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s chains: %d chains of %d changes in %v", chain.placer, chains, chainSteps, time.Since(start).Round(time.Millisecond))
	}
	printReport(t, results, build64, chain)

	for i, res := range results {
		switch cols[i].p.(type) {
		case dbxPlacer:
			checkMovement(t, res, 1)
		case dbxFromPlacer, equalWeightsFrom:
			checkMovementStrict(t, res, 1)
		default:
			continue // the baselines are not held to the targets
		}
		if res.worstDevAll > balanceMax {
			t.Errorf("%s: worst deviation %.2f%% > %.0f%%", res.placer, 100*res.worstDevAll, 100*balanceMax)
		}
	}
	if chain != nil {
		checkChain(t, chain, sc.seed)
	}
}

// equalWeightsFrom runs the AssignFrom placer with every weight set to 1.
type equalWeightsFrom struct{ dbxFromPlacer }

func (equalWeightsFrom) name() string   { return "dbx AssignFrom, equal weights" }
func (equalWeightsFrom) weighted() bool { return false }

// medianBuild times five builds of an n-node cluster and returns the median.
func medianBuild(t *testing.T, p placer, n int, equal bool) time.Duration {
	nodes := benchNodes(n)
	if equal {
		for i := range nodes {
			nodes[i].Weight = 1
		}
	}
	var ds []time.Duration
	for range 5 {
		start := time.Now()
		if _, err := p.build(nodes); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	return ds[2]
}

func printReport(t *testing.T, results []*studyResult, build64 []time.Duration, chain *chainResult) {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	const labelWidth = 42
	row := func(label string, f func(r *studyResult, i int) string) {
		fmt.Fprintf(w, "%-*s\t", labelWidth, label)
		for i, r := range results {
			fmt.Fprintf(w, "%s\t", f(r, i))
		}
		fmt.Fprintln(w)
	}
	pct := func(x float64) string { return fmt.Sprintf("%.2f%%", 100*x) }
	row("", func(r *studyResult, _ int) string { return r.placer })
	row("weights", func(r *studyResult, _ int) string {
		if r.ops[opReweight].runs > 0 {
			return "uniform in [0.25, 4]"
		}
		return "all 1"
	})
	row("clusters (3–64 nodes, seed 1)", func(r *studyResult, _ int) string { return fmt.Sprint(r.clusters) })
	row("balance: worst deviation from fair share", func(r *studyResult, _ int) string { return pct(r.worstDev) })
	row("balance: mean deviation", func(r *studyResult, _ int) string { return pct(r.meanDev()) })
	row("balance: worst over every table built", func(r *studyResult, _ int) string { return pct(r.worstDevAll) })
	for op := 0; op < numOps; op++ {
		name := opNames[op]
		get := func(f func(o *opStats) string) func(r *studyResult, _ int) string {
			return func(r *studyResult, _ int) string {
				o := &r.ops[op]
				if o.runs == 0 {
					return "n/a"
				}
				return f(o)
			}
		}
		row(name+": moved ÷ minimum, all changes", get(func(o *opStats) string { return fmt.Sprintf("%.3f", o.aggregate()) }))
		row(name+": per change p50 / p95 / worst", get(func(o *opStats) string {
			return fmt.Sprintf("%.3f / %.3f / %.3f", o.quantile(0.5), o.quantile(0.95), o.worst)
		}))
		row(name+": changes above 1.15×", get(func(o *opStats) string { return fmt.Sprintf("%d of %d", o.over(ratioMax), o.runs) }))
		row(name+": uninvolved moves (per change)", get(func(o *opStats) string {
			return fmt.Sprintf("%d (%.1f)", o.uninvolved, float64(o.uninvolved)/float64(o.runs))
		}))
		row(name+": ... of buckets never displaced", get(func(o *opStats) string { return fmt.Sprint(o.unforced) }))
	}
	row("table build in study: mean / max", func(r *studyResult, _ int) string {
		return fmt.Sprintf("%v / %v", (r.buildTotal / time.Duration(r.builds)).Round(10*time.Microsecond), r.buildMax.Round(10*time.Microsecond))
	})
	row("table build, 64 nodes (median of 5)", func(_ *studyResult, i int) string { return build64[i].Round(10 * time.Microsecond).String() })
	w.Flush()

	b.WriteString(`
minimum = |change of the node's weight share| × 16384 buckets. add: a node with a random
weight joins; remove: a random node leaves; reweight: a random node gets a random weight
in [0.25, 4] at least 1.5× away from its old one. "uninvolved" moves are between two nodes
other than the changed one; "never displaced" counts those of a bucket on its natural
(first clockwise) owner in both tables, i.e. moves the load bounds did not force.
dbx Assign computes every table from scratch; dbx AssignFrom computes a changed
cluster's table from the previous one (each cluster's first table comes from Assign).
`)
	if chain != nil {
		printChain(&b, chain)
	}
	for _, r := range results {
		fmt.Fprintf(&b, "\n%s:\n  worst balance: %s\n", r.placer, r.worstDevInfo)
		for op := 0; op < numOps; op++ {
			if o := &r.ops[op]; o.runs > 0 {
				fmt.Fprintf(&b, "  worst %s: %s\n", opNames[op], o.worstInfo)
			}
		}
	}
	t.Log("\n" + b.String())
}

// printChain describes a chain study.
func printChain(b *strings.Builder, chain *chainResult) {
	fmt.Fprintf(b, `
Chains (dbx AssignFrom, weights uniform in [0.25, 4]): %d random clusters of 3–64 nodes
(seed %d), each taken through %d random changes (add, remove or reweight one node, as
above, keeping 3–64 nodes), every table computed from the previous one:
  balance: worst deviation over every table           %.2f%%
  balance: mean deviation, last table of each chain   %.2f%%
  moved ÷ minimum: all changes %.3f; per change p50 / p95 / worst %.3f / %.3f / %.3f
  changes above 1.15×: %d of %d
  uninvolved moves (per change): %d (%.2f), of buckets never displaced: %d
  worst balance: %s
  worst change: %s
`, chain.clusters, defaultStudy(0).seed, chainSteps, 100*chain.worstDev, 100*chain.sumDev/float64(chain.nodesSeen),
		float64(chain.moved)/chain.minimum, chain.quantile(0.5), chain.quantile(0.95), chain.worst,
		chain.over(ratioMax), chain.changes, chain.uninvolved, float64(chain.uninvolved)/float64(chain.changes), chain.unforced,
		chain.worstDevInfo, chain.worstInfo)
}
