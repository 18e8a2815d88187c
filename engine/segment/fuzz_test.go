package segment

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dbx-kv/dbx/engine/internal/base"
)

var updateCorpus = flag.Bool("update-fuzz-corpus", false, "rewrite testdata/fuzz/FuzzReader seeds")

// FuzzReader opens arbitrary bytes as a segment and, if that succeeds, scans
// it and does a few Gets and seeks. Nothing may panic or hang, and every
// error must wrap ErrCorrupt (the in-memory file has no I/O errors). The
// input is tried as is and, when it has a footer, with every checksum
// recomputed, so mutations get past the checksums into the block parsers.
func FuzzReader(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte(magic))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzOne(t, data, nil)
		if fixed, ok := fixChecksums(data); ok {
			fuzzOne(t, fixed, NewBlockCache(1<<20))
		}
	})
}

func fuzzOne(t *testing.T, data []byte, cache *BlockCache) {
	check := func(what string, err error) {
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: error %v does not wrap ErrCorrupt", what, err)
		}
	}
	r, err := Open(newMemFile(data), 1, cache)
	if err != nil {
		check("open", err)
		return
	}
	defer r.Close()
	var keys []base.InternalKey
	it := r.NewIter()
	if len(data)%2 == 1 {
		it = r.NewScanIter()
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		if n++; n > len(data) {
			t.Fatalf("scan returned more entries (%d) than the file has bytes", n)
		}
		if len(keys) < 8 || n%16 == 0 {
			k := it.Key()
			k.UserKey = slices.Clone(k.UserKey)
			keys = append(keys, k)
		}
		_ = it.Value()
	}
	check("scan", it.Close())
	keys = append(keys, base.InternalKey{UserKey: []byte("missing"), Seq: base.SeqMax}, base.InternalKey{})
	for _, k := range keys[:min(len(keys), 40)] {
		_, _, _, err := r.Get(k.UserKey, k.Seq)
		check("get", err)
		r.MayContain(k.UserKey)
		for _, it := range []*Iter{r.NewIter(), r.NewScanIter()} {
			if it.SeekGE(k.UserKey) {
				it.Next()
			}
			check("seek", it.Close())
		}
	}
}

// fixChecksums returns a copy of data whose footer, metadata and data block
// checksums are recomputed where the structure allows; ok is false if data
// has no footer.
func fixChecksums(data []byte) ([]byte, bool) {
	if len(data) < footerLen || string(data[len(data)-len(magic):]) != magic {
		return nil, false
	}
	b := slices.Clone(data)
	ft := b[len(b)-footerLen:]
	binary.LittleEndian.PutUint32(ft[52:], crc32.Checksum(ft[:52], castagnoli))
	fix := func(off, n uint64) bool {
		if off > uint64(len(b)) || n > uint64(len(b)) || off+n+blockTrailerLen > uint64(len(b)) {
			return false
		}
		binary.LittleEndian.PutUint32(b[off+n+1:], blockChecksum(b[off:off+n+1]))
		return true
	}
	var hs [3]handle
	for i := range hs {
		hs[i] = handle{binary.LittleEndian.Uint64(ft[16*i:]), binary.LittleEndian.Uint64(ft[16*i+8:])}
		fix(hs[i].off, hs[i].n)
	}
	// Data blocks, from the index block.
	idx := hs[1]
	if !fix(idx.off, idx.n) {
		return b, true
	}
	ib := b[idx.off : idx.off+idx.n]
	count, p := binary.Uvarint(ib)
	for i := uint64(0); p > 0 && i < count && i < 1<<16; i++ {
		klen, n := binary.Uvarint(ib[p:])
		if n <= 0 || klen > uint64(len(ib)-p-n) {
			break
		}
		p += n + int(klen)
		off, n := binary.Uvarint(ib[p:])
		if n <= 0 {
			break
		}
		p += n
		ln, n := binary.Uvarint(ib[p:])
		if n <= 0 {
			break
		}
		p += n
		fix(off, ln)
	}
	// The index block's own checksum again, in case a data block overlapped it.
	fix(idx.off, idx.n)
	return b, true
}

// fuzzSeeds are the committed seed corpus: small valid segments and damaged
// copies of them.
func fuzzSeeds(t testing.TB) map[string][]byte {
	mk := func(opts WriterOptions, n int, longValues bool) []byte {
		var es []entry
		for i := range n {
			uk := fmt.Appendf(nil, "k%02d", i/2)
			e := entry{key: base.InternalKey{UserKey: uk, Seq: uint64(100 - i%2), Kind: base.KindSet}, value: fmt.Appendf(nil, "v%d", i)}
			if i%5 == 3 {
				e.key.Kind, e.value = base.KindDelete, nil
			}
			if longValues && i%7 == 0 {
				e.value = []byte(strings.Repeat("x", 40))
			}
			es = append(es, e)
		}
		b, _ := buildSegment(t, opts, es)
		return b
	}
	small := mk(DefaultWriterOptions(), 4, false)
	multi := mk(WriterOptions{BlockSize: 64, BloomBitsPerKey: 10, RestartInterval: 3}, 14, true)
	noFilter := mk(WriterOptions{BlockSize: 64, BloomBitsPerKey: 0, RestartInterval: 2}, 8, false)
	empty := mk(DefaultWriterOptions(), 0, false)

	flip := func(b []byte, off int) []byte {
		b = slices.Clone(b)
		b[off] ^= 0x10
		return b
	}
	r := openBytes(t, multi, 1, nil)
	indexOff := r.Props().DataBytes + r.Props().FilterBytes
	r.Close()
	return map[string][]byte{
		"valid-small":         small,
		"valid-multi-block":   multi,
		"valid-no-filter":     noFilter,
		"valid-empty":         empty,
		"damaged-data-block":  flip(multi, 10),
		"damaged-index":       flip(multi, int(indexOff)+3),
		"damaged-footer":      flip(multi, len(multi)-20),
		"damaged-magic":       flip(small, len(small)-1),
		"damaged-truncated":   multi[:len(multi)/2],
		"damaged-tail-cut":    multi[:len(multi)-1],
		"damaged-bad-version": flip(noFilter, len(noFilter)-footerLen+48),
	}
}

// TestFuzzCorpus rewrites the seed corpus with -update-fuzz-corpus, and
// otherwise checks that it is present.
func TestFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzReader")
	seeds := fuzzSeeds(t)
	if *updateCorpus {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range seeds {
			content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name := range seeds {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Fatalf("seed %s missing (run go test -run TestFuzzCorpus -update-fuzz-corpus): %v", name, err)
		}
	}
	// The valid seeds open and scan cleanly, the damaged ones fail.
	for name, b := range seeds {
		err := openAndScan(b)
		if valid := strings.HasPrefix(name, "valid-"); valid != (err == nil) {
			t.Fatalf("seed %s: open and scan: %v", name, err)
		}
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("seed %s: %v", name, err)
		}
	}
}

func openAndScan(b []byte) error {
	r, err := Open(newMemFile(b), 1, nil)
	if err != nil {
		return err
	}
	defer r.Close()
	it := r.NewIter()
	for ok := it.First(); ok; ok = it.Next() {
	}
	return it.Close()
}
