package router

import (
	"math/rand/v2"
	"testing"
)

var sink int

// keys16 returns n random 16-byte keys (printable, no braces), seeded.
func keys16(n int) [][]byte {
	rng := rand.New(rand.NewPCG(16, 16))
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_-"
	keys := make([][]byte, n)
	for i := range keys {
		k := make([]byte, 16)
		for j := range k {
			k[j] = alphabet[rng.IntN(len(alphabet))]
		}
		keys[i] = k
	}
	return keys
}

// BenchmarkOwner measures key → owner lookups for 16-byte keys on one
// goroutine (one core): CRC16, hash tag scan and table read. It reports
// lookups/s.
func BenchmarkOwner(b *testing.B) {
	tab := testTable(b, 1, 1, 1, 2, 0.5, 1, 3, 1, 1, 2)
	keys := keys16(1024)
	b.ReportAllocs()
	n := 0
	for i := 0; b.Loop(); i++ {
		n += len(tab.Owner(keys[i&1023]))
	}
	sink = n
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
}

// BenchmarkOwnerString is BenchmarkOwner with string keys.
func BenchmarkOwnerString(b *testing.B) {
	tab := testTable(b, 1, 1, 1, 2, 0.5, 1, 3, 1, 1, 2)
	bk := keys16(1024)
	keys := make([]string, len(bk))
	for i, k := range bk {
		keys[i] = string(k)
	}
	b.ReportAllocs()
	n := 0
	for i := 0; b.Loop(); i++ {
		n += len(tab.OwnerString(keys[i&1023]))
	}
	sink = n
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
}

// BenchmarkBucket is the key → bucket step alone, 16-byte keys.
func BenchmarkBucket(b *testing.B) {
	keys := keys16(1024)
	n := 0
	for i := 0; b.Loop(); i++ {
		n += int(Bucket(keys[i&1023]))
	}
	sink = n
}

// BenchmarkFromRing is the table build from a 64-node ring's assignment.
func BenchmarkFromRing(b *testing.B) {
	r := testRing(b, 1, make64()...)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := FromRing(1, r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnmarshal decodes and validates a 64-node table.
func BenchmarkUnmarshal(b *testing.B) {
	tab := testTable(b, 1, 1, make64()...)
	data, _ := tab.MarshalBinary()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseTable(data); err != nil {
			b.Fatal(err)
		}
	}
}

func make64() []float64 {
	w := make([]float64, 64)
	for i := range w {
		w[i] = 0.25 * float64(1+(i*7)%16)
	}
	return w
}
