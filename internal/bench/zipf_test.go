package bench

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestZipfBoundedAndSkewed(t *testing.T) {
	for _, n := range []uint64{1, 2, 10, 1000, 100_000} {
		z := NewZipf(n, ZipfTheta)
		r := rand.New(rand.NewPCG(7, uint64(n)))
		const draws = 200_000
		counts := make(map[uint64]int)
		for range draws {
			v := z.Next(r)
			if v >= n {
				t.Fatalf("n=%d: drew %d, out of [0, %d)", n, v, n)
			}
			counts[v]++
		}
		if n < 10 {
			continue
		}
		// P(rank 0) = 1/ζ(n, θ) and P(rank 1) = 2^−θ/ζ(n, θ) exactly for
		// this generator; allow 5 standard errors.
		zeta := Zeta(n, ZipfTheta)
		for rank, want := range []float64{1 / zeta, math.Pow(2, -ZipfTheta) / zeta} {
			got := float64(counts[uint64(rank)]) / draws
			tol := 5 * math.Sqrt(want*(1-want)/draws)
			if math.Abs(got-want) > tol {
				t.Errorf("n=%d: rank %d share %.4f, want %.4f ± %.4f", n, rank, got, want, tol)
			}
		}
		// Skew: the top 1% of ranks take far more than 1% of draws.
		var top int
		for k, c := range counts {
			if k < max(n/100, 1) {
				top += c
			}
		}
		if share := float64(top) / draws; share < 0.3 {
			t.Errorf("n=%d: top 1%% of keys got %.3f of draws, want a zipfian skew (> 0.3)", n, share)
		}
	}
}

func TestZetaApproximation(t *testing.T) {
	// Beyond zetaExactMax Zeta switches to Euler–Maclaurin; compare with
	// the exact sum just past the switch.
	n := uint64(zetaExactMax + 500_000)
	var exact float64
	for i := uint64(1); i <= n; i++ {
		exact += math.Pow(float64(i), -ZipfTheta)
	}
	if got := Zeta(n, ZipfTheta); math.Abs(got-exact)/exact > 1e-9 {
		t.Errorf("Zeta(%d) = %.12f, exact %.12f", n, got, exact)
	}
	if got, want := Zeta(2, ZipfTheta), 1+math.Pow(2, -ZipfTheta); got != want {
		t.Errorf("Zeta(2) = %v, want %v", got, want)
	}
}
