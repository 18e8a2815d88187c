package segment

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/dbx-kv/dbx/engine/internal/base"
	"github.com/dbx-kv/dbx/engine/vfs"
)

const (
	benchKeys       = 1_000_000
	benchValueBytes = 100
)

var bench struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// benchKey is the i-th of the benchmark's 16-byte keys.
func benchKey(dst []byte, i int) []byte {
	dst = append(dst[:0], "usr:"...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(i)*2654435761)
	return binary.BigEndian.AppendUint32(dst, uint32(i))
}

// benchFile writes, once per test binary, a segment of 1M 16-byte keys with
// 100-byte values on disk.
func benchFile(b *testing.B) string {
	bench.once.Do(func() {
		bench.dir, bench.err = os.MkdirTemp("", "segment-bench-")
		if bench.err != nil {
			return
		}
		bench.path = filepath.Join(bench.dir, "000001.seg")
		f, err := vfs.Default.Create(bench.path)
		if err != nil {
			bench.err = err
			return
		}
		w := NewWriter(f, DefaultWriterOptions())
		rng := rand.New(rand.NewPCG(1, 1))
		value := make([]byte, benchValueBytes)
		var key []byte
		for i := range benchKeys {
			for j := range value {
				value[j] = byte(rng.Uint32())
			}
			key = benchKey(key, i)
			if err := w.Add(base.InternalKey{UserKey: key, Seq: uint64(i + 1), Kind: base.KindSet}, value); err != nil {
				bench.err = err
				return
			}
		}
		_, bench.err = w.Finish()
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return bench.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bench.dir != "" {
		os.RemoveAll(bench.dir)
	}
	os.Exit(code)
}

func openBench(b *testing.B, cache *BlockCache) *Reader {
	f, err := vfs.Default.Open(benchFile(b))
	if err != nil {
		b.Fatal(err)
	}
	r, err := Open(f, 1, cache)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	return r
}

// BenchmarkGet does random point reads of present keys: "cached" with every
// block in the BlockCache, "uncached" with no cache (a pread and a checksum
// per Get, served by the OS page cache), "absent" of missing keys (bloom).
func BenchmarkGet(b *testing.B) {
	for _, mode := range []string{"cached", "uncached", "absent"} {
		b.Run(mode, func(b *testing.B) {
			var cache *BlockCache
			if mode != "uncached" {
				cache = NewBlockCache(512 << 20)
			}
			r := openBench(b, cache)
			if cache != nil {
				it := r.NewIter()
				for ok := it.First(); ok; ok = it.Next() {
				}
				if err := it.Close(); err != nil {
					b.Fatal(err)
				}
			}
			rng := rand.New(rand.NewPCG(2, 2))
			var key []byte
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				i := rng.IntN(benchKeys)
				key = benchKey(key, i)
				if mode == "absent" {
					key[len(key)-1] ^= 0x80 // different low bits of the id: not in the file
				}
				v, _, found, err := r.Get(key, base.SeqMax)
				if err != nil || found != (mode != "absent") || (found && len(v) != benchValueBytes) {
					b.Fatalf("get %x: found=%v err=%v", key, found, err)
				}
			}
		})
	}
}

// BenchmarkIterate scans the whole 1M-entry file; ns/op is per scan.
// "cached": NewIter with every block in the BlockCache; "uncached": NewIter
// without a cache (one pread per block); "scan": NewScanIter without a cache
// (256 KiB reads).
func BenchmarkIterate(b *testing.B) {
	for _, mode := range []string{"cached", "uncached", "scan"} {
		b.Run(mode, func(b *testing.B) {
			var cache *BlockCache
			if mode == "cached" {
				cache = NewBlockCache(512 << 20)
			}
			r := openBench(b, cache)
			newIter := r.NewIter
			if mode == "scan" {
				newIter = r.NewScanIter
			}
			if cache != nil {
				it := r.NewIter()
				for ok := it.First(); ok; ok = it.Next() {
				}
				it.Close()
			}
			b.ReportAllocs()
			b.SetBytes(r.Size())
			b.ResetTimer()
			for b.Loop() {
				it := newIter()
				n := 0
				for ok := it.First(); ok; ok = it.Next() {
					n++
				}
				if err := it.Close(); err != nil || n != benchKeys {
					b.Fatalf("scanned %d entries: %v", n, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchKeys), "ns/entry")
		})
	}
}

// BenchmarkWrite writes 100k entries per op to an in-memory file.
func BenchmarkWrite(b *testing.B) {
	const n = 100_000
	value := make([]byte, benchValueBytes)
	var key []byte
	b.ReportAllocs()
	for b.Loop() {
		w := NewWriter(newMemFile(nil), DefaultWriterOptions())
		for i := range n {
			key = benchKey(key, i)
			if err := w.Add(base.InternalKey{UserKey: key, Seq: 1, Kind: base.KindSet}, value); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := w.Finish(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
}
