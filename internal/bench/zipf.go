package bench

import (
	"math"
	"math/rand/v2"
)

// ZipfTheta is the skew of the zipfian distribution, as YCSB's default.
const ZipfTheta = 0.99

// zetaExactMax is how many terms Zeta sums one by one; the rest of the sum
// is approximated (Euler–Maclaurin), so setup costs O(min(n, 10⁶)).
const zetaExactMax = 1_000_000

// Zipf draws ranks in [0, n) with P(r) ∝ 1/(r+1)^θ, using the method of
// Gray et al., "Quickly Generating Billion-Record Synthetic Databases"
// (SIGMOD 1994), as YCSB's ZipfianGenerator does. It holds only constants:
// one Zipf may be shared by goroutines that each pass their own *rand.Rand.
type Zipf struct {
	n     uint64
	theta float64
	zetan float64
	alpha float64
	eta   float64
	half  float64 // 1 + 0.5^θ
}

// NewZipf returns a generator over [0, n) with skew theta, 0 < theta < 1.
// It panics on n == 0 or theta outside (0, 1): Config.Validate rules both out.
func NewZipf(n uint64, theta float64) *Zipf {
	if n == 0 || theta <= 0 || theta >= 1 {
		panic("bench: NewZipf needs n > 0 and 0 < theta < 1")
	}
	z := &Zipf{n: n, theta: theta, zetan: Zeta(n, theta), alpha: 1 / (1 - theta)}
	zeta2 := Zeta(2, theta)
	z.eta = (1 - math.Pow(2/float64(n), 1-theta)) / (1 - zeta2/z.zetan)
	z.half = 1 + math.Pow(0.5, theta)
	return z
}

// Next returns the next rank; rank 0 is the most popular.
func (z *Zipf) Next(r *rand.Rand) uint64 {
	u := r.Float64()
	uz := u * z.zetan
	if uz < 1 {
		return 0
	}
	if uz < z.half {
		return min(1, z.n-1)
	}
	v := uint64(float64(z.n) * math.Pow(z.eta*u-z.eta+1, z.alpha))
	return min(v, z.n-1)
}

// Zeta returns ζ(n, θ) = Σ_{i=1..n} 1/i^θ: exactly for n ≤ 10⁶, and beyond
// that the exact first 10⁶ terms plus an Euler–Maclaurin estimate of the
// tail (relative error far below 10⁻⁹ for θ = 0.99).
func Zeta(n uint64, theta float64) float64 {
	m := min(n, zetaExactMax)
	var sum float64
	for i := uint64(1); i <= m; i++ {
		sum += math.Pow(float64(i), -theta)
	}
	if n == m {
		return sum
	}
	// Σ_{i=m+1..n} f(i) ≈ ∫_m^n f + (f(n) − f(m))/2 + (f'(n) − f'(m))/12,
	// f(x) = x^−θ.
	a, b := float64(m), float64(n)
	f := func(x float64) float64 { return math.Pow(x, -theta) }
	df := func(x float64) float64 { return -theta * math.Pow(x, -theta-1) }
	integral := (math.Pow(b, 1-theta) - math.Pow(a, 1-theta)) / (1 - theta)
	return sum + integral + (f(b)-f(a))/2 + (df(b)-df(a))/12
}
