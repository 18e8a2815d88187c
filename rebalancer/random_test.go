package rebalancer

import (
	"flag"
	"strings"
	"testing"
)

var (
	simSeed  = flag.Uint64("sim.seed", 0, "run only this seed of TestRandomSchedules")
	simSeeds = flag.Int("sim.seeds", 300, "how many seeds TestRandomSchedules runs")
	simTrace = flag.Bool("sim.trace", false, "print the trace of a failing schedule")
)

// TestRandomSchedules runs seeded schedules of moves with client writes,
// message loss and reordering, lagging nodes, crashes and restarts (some
// with a wiped disk): never two nodes accept writes for one bucket, and
// once healed no acknowledged write is lost. Rerun one with -sim.seed.
func TestRandomSchedules(t *testing.T) {
	seeds := make([]uint64, 0, *simSeeds)
	if *simSeed != 0 {
		seeds = append(seeds, *simSeed)
	} else {
		for i := 1; i <= *simSeeds; i++ {
			seeds = append(seeds, uint64(i))
		}
	}
	for _, seed := range seeds {
		var tr strings.Builder
		trace := func(s string) { tr.WriteString(s + "\n") }
		if err := runSchedule(t, seed, 400, nil, trace); err != nil {
			if *simTrace {
				t.Log(tr.String())
			}
			t.Fatalf("seed %d: %v (rerun: go test ./rebalancer -run TestRandomSchedules -sim.seed %d -sim.trace)", seed, err, seed)
		}
	}
}

// TestRandomSchedulesCatchMutations: the schedules find each known bug
// when its fix is switched off in the modelled driver.
func TestRandomSchedulesCatchMutations(t *testing.T) {
	for _, mut := range []string{"no-fence-check", "no-catch-up"} {
		t.Run(mut, func(t *testing.T) {
			for seed := uint64(1); seed <= 300; seed++ {
				if err := runSchedule(t, seed, 400, map[string]bool{mut: true}, nil); err != nil {
					t.Logf("seed %d: %v", seed, err)
					return
				}
			}
			t.Fatalf("no schedule of 300 found the %s mutation", mut)
		})
	}
}
