package segment

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/dbx-kv/dbx/engine/internal/base"
	"github.com/dbx-kv/dbx/engine/vfs"
)

var seedFlag = flag.Uint64("seed", 0, "seed for randomized tests (0: derive from the time)")

// testSeed returns the seed to use and logs it so a failure can be rerun.
func testSeed(t testing.TB) uint64 {
	t.Helper()
	s := *seedFlag
	if s == 0 {
		s = rand.Uint64()
	}
	t.Logf("seed %d (rerun with -seed %d)", s, s)
	return s
}

type entry struct {
	key   base.InternalKey
	value []byte
}

// genEntries returns n user keys' worth of sorted entries: 1-4 versions per
// key with decreasing seqs, about 20% tombstones, 20% empty values and a few
// values larger than 4 KiB.
func genEntries(rng *rand.Rand, n int) []entry {
	keys := make(map[string]bool, n)
	for len(keys) < n {
		k := make([]byte, 1+rng.IntN(24))
		for i := range k {
			k[i] = byte('a' + rng.IntN(6)) // small alphabet: long shared prefixes
		}
		if rng.IntN(10) == 0 {
			k[len(k)-1] = byte(rng.IntN(256))
		}
		keys[string(k)] = true
	}
	sorted := make([]string, 0, n)
	for k := range keys {
		sorted = append(sorted, k)
	}
	slices.Sort(sorted)
	var es []entry
	for _, k := range sorted {
		versions := 1 + rng.IntN(4)
		seq := uint64(100 + rng.IntN(1000))
		for range versions {
			e := entry{key: base.InternalKey{UserKey: []byte(k), Seq: seq, Kind: base.KindSet}}
			switch r := rng.IntN(100); {
			case r < 20:
				e.key.Kind = base.KindDelete
			case r < 40:
				e.value = []byte{}
			case r < 42:
				e.value = randBytes(rng, 4096+rng.IntN(8192))
			default:
				e.value = randBytes(rng, rng.IntN(200))
			}
			es = append(es, e)
			seq -= 1 + uint64(rng.IntN(30))
		}
	}
	return es
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// buildSegment writes es with opts and returns the file bytes and Props.
func buildSegment(t testing.TB, opts WriterOptions, es []entry) ([]byte, Props) {
	t.Helper()
	f := newMemFile(nil)
	w := NewWriter(f, opts)
	for _, e := range es {
		if err := w.Add(e.key, e.value); err != nil {
			t.Fatalf("add %s: %v", e.key, err)
		}
	}
	props, err := w.Finish()
	if err != nil {
		t.Fatalf("finish: %v", err)
	}
	if !f.closed.Load() {
		t.Fatal("Finish did not close the file")
	}
	return f.bytes(), props
}

func openBytes(t testing.TB, b []byte, fileNum uint64, cache *BlockCache) *Reader {
	t.Helper()
	r, err := Open(newMemFile(b), fileNum, cache)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return r
}

// modelGet is the reference Get: the first entry of userKey with seq <= seq.
func modelGet(es []entry, userKey []byte, seq uint64) (entry, bool) {
	i, _ := slices.BinarySearchFunc(es, base.InternalKey{UserKey: userKey, Seq: min(seq, base.SeqMax), Kind: base.KindMax},
		func(e entry, k base.InternalKey) int { return base.Compare(e.key, k) })
	if i < len(es) && bytes.Equal(es[i].key.UserKey, userKey) {
		return es[i], true
	}
	return entry{}, false
}

func wantProps(es []entry) Props {
	var p Props
	for i, e := range es {
		if i == 0 {
			p.Smallest, p.MinSeq, p.MaxSeq = e.key, e.key.Seq, e.key.Seq
		}
		p.Largest = e.key
		p.Entries++
		if e.key.Kind == base.KindDelete {
			p.Tombstones++
		}
		p.RawKeyBytes += uint64(len(e.key.UserKey))
		p.RawValueBytes += uint64(len(e.value))
		p.MinSeq = min(p.MinSeq, e.key.Seq)
		p.MaxSeq = max(p.MaxSeq, e.key.Seq)
	}
	return p
}

func checkProps(t *testing.T, got Props, es []entry, fileBytes int) {
	t.Helper()
	want := wantProps(es)
	if got.Entries != want.Entries || got.Tombstones != want.Tombstones || got.RawKeyBytes != want.RawKeyBytes ||
		got.RawValueBytes != want.RawValueBytes || got.MinSeq != want.MinSeq || got.MaxSeq != want.MaxSeq ||
		base.Compare(got.Smallest, want.Smallest) != 0 || base.Compare(got.Largest, want.Largest) != 0 {
		t.Fatalf("props = %+v, want totals %+v", got, want)
	}
	if got.FileBytes != uint64(fileBytes) {
		t.Fatalf("props.FileBytes = %d, want %d", got.FileBytes, fileBytes)
	}
	if got.DataBytes+got.FilterBytes+got.IndexBytes >= got.FileBytes || (len(es) > 0 && got.DataBlocks == 0) {
		t.Fatalf("props sizes inconsistent: %+v", got)
	}
}

// checkScan asserts that a full iteration returns exactly es, with both
// kinds of iterator.
func checkScan(t *testing.T, r *Reader, es []entry) {
	t.Helper()
	checkScanIter(t, r.NewIter(), es)
	checkScanIter(t, r.NewScanIter(), es)
}

func checkScanIter(t *testing.T, it *Iter, es []entry) {
	t.Helper()
	i := 0
	for ok := it.First(); ok; ok = it.Next() {
		if i >= len(es) {
			t.Fatalf("scan: extra entry %s", it.Key())
		}
		if base.Compare(it.Key(), es[i].key) != 0 || !bytes.Equal(it.Value(), es[i].value) {
			t.Fatalf("scan entry %d: got %s=%q, want %s=%q", i, it.Key(), trunc(it.Value()), es[i].key, trunc(es[i].value))
		}
		i++
	}
	if err := it.Close(); err != nil {
		t.Fatalf("scan: %v", err)
	}
	if i != len(es) {
		t.Fatalf("scan returned %d entries, want %d", i, len(es))
	}
}

func trunc(b []byte) []byte {
	if len(b) > 20 {
		return b[:20]
	}
	return b
}

var testOptions = map[string]WriterOptions{
	"default":        DefaultWriterOptions(),
	"tiny-blocks":    {BlockSize: 64, BloomBitsPerKey: 10, RestartInterval: 16},
	"restart-1":      {BlockSize: 512, BloomBitsPerKey: 10, RestartInterval: 1},
	"no-filter":      {BlockSize: 256, BloomBitsPerKey: 0, RestartInterval: 4},
	"restart-1024":   {BlockSize: 1 << 16, BloomBitsPerKey: 3, RestartInterval: 1024},
	"restart-3-tiny": {BlockSize: 100, BloomBitsPerKey: 20, RestartInterval: 3},
}

func TestRoundTrip(t *testing.T) {
	seed := testSeed(t)
	for name, opts := range testOptions {
		for _, cached := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/cached=%v", name, cached), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, 1))
				es := genEntries(rng, 600)
				b, props := buildSegment(t, opts, es)
				checkProps(t, props, es, len(b))
				var cache *BlockCache
				if cached {
					cache = NewBlockCache(1 << 20)
				}
				r := openBytes(t, b, 7, cache)
				defer r.Close()
				if got := r.Props(); !propsEqual(got, props) {
					t.Fatalf("reader props %+v != writer props %+v", got, props)
				}
				if r.FileNum() != 7 || r.Size() != int64(len(b)) {
					t.Fatalf("FileNum, Size = %d, %d", r.FileNum(), r.Size())
				}
				checkScan(t, r, es)
				checkScan(t, r, es) // second pass: from the cache if any
				checkGets(t, r, es)
				checkSeeks(t, r, es)
			})
		}
	}
}

func propsEqual(a, b Props) bool {
	return base.Compare(a.Smallest, b.Smallest) == 0 && base.Compare(a.Largest, b.Largest) == 0 &&
		fmt.Sprint(a.Entries, a.Tombstones, a.RawKeyBytes, a.RawValueBytes, a.MinSeq, a.MaxSeq, a.DataBytes, a.DataBlocks, a.IndexBytes, a.FilterBytes, a.FileBytes) ==
			fmt.Sprint(b.Entries, b.Tombstones, b.RawKeyBytes, b.RawValueBytes, b.MinSeq, b.MaxSeq, b.DataBytes, b.DataBlocks, b.IndexBytes, b.FilterBytes, b.FileBytes)
}

// checkGets compares Get with the model for every user key at seqs around
// each version, and for absent keys.
func checkGets(t *testing.T, r *Reader, es []entry) {
	t.Helper()
	check := func(uk []byte, seq uint64) {
		t.Helper()
		v, kind, found, err := r.Get(uk, seq)
		if err != nil {
			t.Fatalf("get %q@%d: %v", uk, seq, err)
		}
		want, wantFound := modelGet(es, uk, seq)
		if found != wantFound {
			t.Fatalf("get %q@%d: found=%v, want %v (%s)", uk, seq, found, wantFound, want.key)
		}
		if found && (kind != want.key.Kind || !bytes.Equal(v, want.value)) {
			t.Fatalf("get %q@%d = %s %q, want %s %q", uk, seq, kind, trunc(v), want.key, trunc(want.value))
		}
		k, v, found, err := r.Lookup(uk, seq)
		if err != nil || found != wantFound || (found && (base.Compare(k, want.key) != 0 || !bytes.Equal(v, want.value))) {
			t.Fatalf("lookup %q@%d = %s %q %v %v, want %s %q %v", uk, seq, k, trunc(v), found, err, want.key, trunc(want.value), wantFound)
		}
	}
	for i, e := range es {
		uk := e.key.UserKey
		check(uk, e.key.Seq)
		check(uk, e.key.Seq+1)
		check(uk, e.key.Seq-1)
		if i == 0 || !bytes.Equal(es[i-1].key.UserKey, uk) {
			check(uk, 0)
			check(uk, base.SeqMax)
			check(uk, ^uint64(0))
			check(append(slices.Clip(uk), 0), base.SeqMax) // absent, just after
			check(uk[:len(uk)-1], base.SeqMax)             // maybe absent, just before
		}
	}
	check(nil, base.SeqMax)
	check([]byte("\xff\xff\xff"), base.SeqMax)
}

// checkSeeks compares SeekGE (and a following Next) with the model at every
// user key and between keys.
func checkSeeks(t *testing.T, r *Reader, es []entry) {
	t.Helper()
	checkSeeksIter(t, r.NewIter(), es)
	checkSeeksIter(t, r.NewScanIter(), es)
}

func checkSeeksIter(t *testing.T, it *Iter, es []entry) {
	t.Helper()
	defer it.Close()
	check := func(uk []byte) {
		t.Helper()
		i := firstGE(es, uk)
		ok := it.SeekGE(uk)
		for step := 0; step < 2; step++ {
			if i+step >= len(es) {
				if ok {
					t.Fatalf("seek %q (+%d): got %s, want end", uk, step, it.Key())
				}
				if it.Error() != nil {
					t.Fatalf("seek %q: %v", uk, it.Error())
				}
				return
			}
			want := es[i+step]
			if !ok || base.Compare(it.Key(), want.key) != 0 || !bytes.Equal(it.Value(), want.value) {
				t.Fatalf("seek %q (+%d): got valid=%v %s, want %s (err %v)", uk, step, ok, it.Key(), want.key, it.Error())
			}
			ok = it.Next()
		}
	}
	for i, e := range es {
		if i > 0 && bytes.Equal(es[i-1].key.UserKey, e.key.UserKey) {
			continue
		}
		uk := e.key.UserKey
		check(uk)
		check(append(slices.Clip(uk), 0))
		check(uk[:len(uk)-1])
		if c := uk[len(uk)-1]; c < 0xff {
			check(append(slices.Clone(uk[:len(uk)-1]), c+1))
		}
	}
	check(nil)
	check([]byte("\xff\xff\xff\xff"))
}

// firstGE returns the index of the first entry with user key >= uk.
func firstGE(es []entry, uk []byte) int {
	i, _ := slices.BinarySearchFunc(es, uk, func(e entry, uk []byte) int {
		if c := bytes.Compare(e.key.UserKey, uk); c != 0 {
			return c
		}
		return 1
	})
	return i
}

// TestScanReadahead runs the scan iterator with a readahead buffer smaller
// than most blocks and than a few of them, so every refill path runs.
func TestScanReadahead(t *testing.T) {
	defer func(n uint64) { scanReadaheadBytes = n }(scanReadaheadBytes)
	es := genEntries(rand.New(rand.NewPCG(testSeed(t), 11)), 400)
	b, props := buildSegment(t, WriterOptions{BlockSize: 512, BloomBitsPerKey: 10, RestartInterval: 8}, es)
	for _, ra := range []uint64{1, 700, 3000, 1 << 24} {
		scanReadaheadBytes = ra
		f := newMemFile(b)
		r, err := Open(f, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		reads := f.reads.Load()
		checkScanIter(t, r.NewScanIter(), es)
		if n := f.reads.Load() - reads; ra == 1<<24 && n != 1 {
			t.Fatalf("scan of %d data bytes with %d bytes of readahead took %d reads", props.DataBytes, ra, n)
		}
		checkSeeksIter(t, r.NewScanIter(), es)
		r.Close()
	}
}

func TestEmptySegment(t *testing.T) {
	b, props := buildSegment(t, DefaultWriterOptions(), nil)
	if props.Entries != 0 || props.DataBlocks != 0 || props.FilterBytes != 0 || props.FileBytes != uint64(len(b)) {
		t.Fatalf("props = %+v", props)
	}
	r := openBytes(t, b, 1, NewBlockCache(1<<20))
	defer r.Close()
	if _, _, found, err := r.Get([]byte("a"), base.SeqMax); found || err != nil {
		t.Fatalf("get on empty segment: found=%v err=%v", found, err)
	}
	it := r.NewIter()
	if it.First() || it.SeekGE(nil) || it.Error() != nil {
		t.Fatalf("iterator over empty segment is valid (err %v)", it.Error())
	}
	it.Close()
}

func TestSingleEntryAndSeparators(t *testing.T) {
	// Keys designed to exercise separator shortening (distant keys) and its
	// fallbacks (prefix keys, 0xff bytes, one user key across blocks).
	var es []entry
	add := func(k string, seq uint64, v string) {
		es = append(es, entry{key: base.InternalKey{UserKey: []byte(k), Seq: seq, Kind: base.KindSet}, value: []byte(v)})
	}
	add("a", 5, strings.Repeat("x", 70))
	add("ab", 5, strings.Repeat("x", 70))
	for s := uint64(90); s > 60; s-- {
		add("abc", s, strings.Repeat("y", 40))
	}
	add("abc\xff", 1, "z")
	add("abc\xff\xff", 1, strings.Repeat("z", 70))
	add("q", 1, strings.Repeat("q", 70))
	add("zzzzzz", 1, strings.Repeat("q", 70))
	add("\xff\xff", 1, "last")
	opts := WriterOptions{BlockSize: 64, BloomBitsPerKey: 10, RestartInterval: 2}
	b, props := buildSegment(t, opts, es)
	if props.DataBlocks < 10 {
		t.Fatalf("want many blocks, got %d", props.DataBlocks)
	}
	r := openBytes(t, b, 1, nil)
	defer r.Close()
	checkScan(t, r, es)
	checkGets(t, r, es)
	checkSeeks(t, r, es)
}

func TestSeparator(t *testing.T) {
	enc := func(k string, seq uint64) []byte {
		return base.InternalKey{UserKey: []byte(k), Seq: seq, Kind: base.KindSet}.AppendEncoded(nil)
	}
	for _, tc := range []struct {
		a, b string
		want string // user key of the separator; "" = a itself
	}{
		{"abcdef", "abzzz", "abd"},
		{"abc", "abcd", ""},
		{"abc", "abd", ""},
		{"a\xffz", "b", ""},
		{"a", "z", ""}, // would not be shorter
		{"foo1234", "foo9", "foo2"},
	} {
		a, b := enc(tc.a, 3), enc(tc.b, 9)
		s := separator(nil, a, b)
		if compareEncoded(a, s) > 0 || compareEncoded(s, b) >= 0 {
			t.Fatalf("separator(%q, %q) = %q not in [a, b)", tc.a, tc.b, s)
		}
		if tc.want == "" {
			if !bytes.Equal(s, a) {
				t.Fatalf("separator(%q, %q) = %q, want a", tc.a, tc.b, s)
			}
		} else if got := string(s[:len(s)-trailerLen]); got != tc.want {
			t.Fatalf("separator(%q, %q) = %q, want %q", tc.a, tc.b, got, tc.want)
		}
	}
	for _, a := range []string{"abc", "\xff\xff", "a\xff", "\xffa", ""} {
		ea := enc(a, 1)
		s := successor(nil, ea)
		if compareEncoded(ea, s) > 0 {
			t.Fatalf("successor(%q) = %q < a", a, s)
		}
	}
}

func TestWriterOutOfOrder(t *testing.T) {
	k := func(uk string, seq uint64, kind base.Kind) base.InternalKey {
		return base.InternalKey{UserKey: []byte(uk), Seq: seq, Kind: kind}
	}
	for _, tc := range []struct{ first, second base.InternalKey }{
		{k("b", 5, base.KindSet), k("a", 5, base.KindSet)},
		{k("b", 5, base.KindSet), k("b", 5, base.KindSet)},
		{k("b", 5, base.KindSet), k("b", 6, base.KindSet)},
		{k("b", 5, base.KindDelete), k("b", 5, base.KindSet)},
	} {
		f := newMemFile(nil)
		w := NewWriter(f, DefaultWriterOptions())
		if err := w.Add(tc.first, []byte("v")); err != nil {
			t.Fatal(err)
		}
		if err := w.Add(tc.second, nil); !errors.Is(err, ErrOutOfOrder) {
			t.Fatalf("add %s after %s: err = %v, want ErrOutOfOrder", tc.second, tc.first, err)
		}
		// The rejected entry left the writer usable.
		if err := w.Add(k("c", 1, base.KindSet), []byte("w")); err != nil {
			t.Fatal(err)
		}
		props, err := w.Finish()
		if err != nil || props.Entries != 2 {
			t.Fatalf("finish: %+v, %v", props, err)
		}
		r := openBytes(t, f.bytes(), 1, nil)
		checkScan(t, r, []entry{{tc.first, []byte("v")}, {k("c", 1, base.KindSet), []byte("w")}})
		r.Close()
	}
}

func TestWriterRejects(t *testing.T) {
	f := newMemFile(nil)
	w := NewWriter(f, DefaultWriterOptions())
	for _, tc := range []struct {
		k base.InternalKey
		v []byte
	}{
		{base.InternalKey{UserKey: []byte("a"), Seq: base.SeqMax + 1, Kind: base.KindSet}, nil},
		{base.InternalKey{UserKey: []byte("a"), Seq: 1, Kind: base.KindMax + 1}, nil},
		{base.InternalKey{UserKey: make([]byte, KeyBytesMax+1), Seq: 1, Kind: base.KindSet}, nil},
	} {
		if err := w.Add(tc.k, tc.v); err == nil {
			t.Fatalf("add %s accepted", tc.k)
		}
	}
	if err := w.Abort(); err != nil || !f.closed.Load() {
		t.Fatalf("abort: %v, closed=%v", err, f.closed.Load())
	}
	if err := w.Add(base.InternalKey{UserKey: []byte("a"), Seq: 1}, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("add after abort: %v", err)
	}
	if _, err := w.Finish(); !errors.Is(err, ErrClosed) {
		t.Fatalf("finish after abort: %v", err)
	}
}

func TestWriterOptionsValidate(t *testing.T) {
	if err := DefaultWriterOptions().Validate(); err != nil {
		t.Fatal(err)
	}
	err := WriterOptions{BlockSize: 1, BloomBitsPerKey: -1, RestartInterval: 0}.Validate()
	if err == nil {
		t.Fatal("invalid options accepted")
	}
	for _, want := range []string{"BlockSize (1)", "BloomBitsPerKey (-1)", "RestartInterval (0)"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not mention %q", err, want)
		}
	}
	f := newMemFile(nil)
	w := NewWriter(f, WriterOptions{})
	if err := w.Add(base.InternalKey{UserKey: []byte("a")}, nil); err == nil {
		t.Fatal("writer with invalid options accepted an entry")
	}
	if _, err := w.Finish(); err == nil || !f.closed.Load() {
		t.Fatalf("finish with invalid options: err=%v closed=%v", err, f.closed.Load())
	}
}

func TestEstimatedSize(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	es := genEntries(rng, 2000)
	f := newMemFile(nil)
	w := NewWriter(f, DefaultWriterOptions())
	var last int64
	for _, e := range es {
		if err := w.Add(e.key, e.value); err != nil {
			t.Fatal(err)
		}
		if s := w.EstimatedSize(); s < last {
			t.Fatalf("EstimatedSize went down: %d -> %d", last, s)
		} else {
			last = s
		}
	}
	props, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if d := float64(last) / float64(props.FileBytes); d < 0.95 || d > 1.05 {
		t.Fatalf("EstimatedSize %d vs file size %d", last, props.FileBytes)
	}
}

func TestBloomFalsePositives(t *testing.T) {
	const n = 100000
	var es []entry
	for i := range n {
		es = append(es, entry{key: base.InternalKey{UserKey: fmt.Appendf(nil, "user%08d", i*2), Seq: 1, Kind: base.KindSet}})
	}
	b, _ := buildSegment(t, DefaultWriterOptions(), es)
	r := openBytes(t, b, 1, nil)
	defer r.Close()
	for _, e := range es {
		if !r.MayContain(e.key.UserKey) {
			t.Fatalf("false negative for %q", e.key.UserKey)
		}
	}
	fp := 0
	for i := range n {
		if r.MayContain(fmt.Appendf(nil, "user%08d", i*2+1)) {
			fp++
		}
	}
	rate := float64(fp) / n
	t.Logf("false-positive rate at 10 bits/key: %.3f%%", rate*100)
	if rate >= 0.02 {
		t.Fatalf("false-positive rate %.3f%% >= 2%%", rate*100)
	}
	// Random binary keys too.
	rng := rand.New(rand.NewPCG(3, 4))
	fp = 0
	for range n {
		if r.MayContain(randBytes(rng, 16)) {
			fp++
		}
	}
	if rate := float64(fp) / n; rate >= 0.02 {
		t.Fatalf("false-positive rate on random keys %.3f%% >= 2%%", rate*100)
	}
}

// TestCorruptionEveryByte flips every byte of a small segment, one at a time.
// A flip in a data block must surface as ErrCorrupt from a cold Get of a key
// in that block and from a full scan; a flip elsewhere must fail Open with
// ErrCorrupt.
func TestCorruptionEveryByte(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	es := genEntries(rng, 40)
	for i := range es { // keep the file small
		es[i].value = trunc(es[i].value)
	}
	opts := WriterOptions{BlockSize: 256, BloomBitsPerKey: 10, RestartInterval: 4}
	good, props := buildSegment(t, opts, es)
	r := openBytes(t, good, 1, nil)
	index := slices.Clone(r.index)
	r.Close()
	if len(index) < 4 {
		t.Fatalf("want several blocks, got %d", len(index))
	}
	blockOf := func(off int) int {
		for i, e := range index {
			if uint64(off) < e.h.end() {
				return i
			}
		}
		return -1
	}
	for off := range good {
		bad := slices.Clone(good)
		bad[off] ^= 1 << (off % 8)
		r, err := Open(newMemFile(bad), 9, NewBlockCache(1<<20))
		if uint64(off) >= props.DataBytes {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("flip at %d (metadata): open err = %v, want ErrCorrupt", off, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("flip at %d (data): open: %v", off, err)
		}
		// A Get of the first key of the damaged block.
		bi := blockOf(off)
		sep := r.indexKeys[index[bi].keyOff:index[bi].keyEnd]
		var key base.InternalKey
		for _, e := range es {
			k := e.key.AppendEncoded(nil)
			if compareEncoded(k, sep) <= 0 && (bi == 0 || compareEncoded(k, r.indexKeys[index[bi-1].keyOff:index[bi-1].keyEnd]) > 0) {
				key = e.key
				break
			}
		}
		if _, _, _, err := r.Get(key.UserKey, key.Seq); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flip at %d (block %d): get %s err = %v, want ErrCorrupt", off, bi, key, err)
		} else if !strings.Contains(err.Error(), "segment 000009") {
			t.Fatalf("error %q does not name the file", err)
		}
		for _, it := range []*Iter{r.NewIter(), r.NewScanIter()} {
			for ok := it.First(); ok; ok = it.Next() {
			}
			if err := it.Close(); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("flip at %d: scan err = %v, want ErrCorrupt", off, err)
			}
		}
		r.Close()
	}
}

func TestTruncated(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	es := genEntries(rng, 50)
	good, _ := buildSegment(t, WriterOptions{BlockSize: 256, BloomBitsPerKey: 10, RestartInterval: 4}, es)
	for n := range len(good) {
		_, err := Open(newMemFile(slices.Clone(good[:n])), 3, nil)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d of %d bytes: err = %v, want ErrCorrupt", n, len(good), err)
		}
	}
	// Bytes appended after the footer.
	if _, err := Open(newMemFile(append(slices.Clone(good), 0)), 3, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("extended file: err = %v", err)
	}
}

func TestWrongMagic(t *testing.T) {
	good, _ := buildSegment(t, DefaultWriterOptions(), genEntries(rand.New(rand.NewPCG(1, 1)), 10))
	bad := slices.Clone(good)
	bad[len(bad)-1] = '2'
	f := newMemFile(bad)
	_, err := Open(f, 4, nil)
	if !errors.Is(err, ErrNotSegment) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want ErrNotSegment and ErrCorrupt", err)
	}
	if !f.closed.Load() {
		t.Fatal("Open did not close the file on error")
	}
	if _, err := Open(newMemFile([]byte("hello")), 4, nil); !errors.Is(err, ErrNotSegment) {
		t.Fatalf("short file: err = %v, want ErrNotSegment", err)
	}
}

// TestRoundTripFS writes and reads a segment through the disk and the
// in-memory vfs.
func TestRoundTripFS(t *testing.T) {
	es := genEntries(rand.New(rand.NewPCG(testSeed(t), 9)), 3000)
	for name, fs := range map[string]vfs.FS{"disk": vfs.Default, "mem": vfs.NewMem()} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if name == "mem" {
				dir = "/data"
				if err := fs.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			path := filepath.Join(dir, "000001.seg")
			f, err := fs.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			w := NewWriter(f, DefaultWriterOptions())
			for _, e := range es {
				if err := w.Add(e.key, e.value); err != nil {
					t.Fatal(err)
				}
			}
			props, err := w.Finish()
			if err != nil {
				t.Fatal(err)
			}
			if fi, err := fs.Stat(path); err != nil || fi.Size() != int64(props.FileBytes) {
				t.Fatalf("stat: %v, size vs props.FileBytes %d", err, props.FileBytes)
			}
			rf, err := fs.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			r, err := Open(rf, 1, NewBlockCache(8<<20))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			checkProps(t, r.Props(), es, int(props.FileBytes))
			checkScan(t, r, es)
			checkGets(t, r, es)
		})
	}
}

// TestConcurrentReads runs Gets and iterators in parallel over a cache small
// enough to evict constantly (run with -race).
func TestConcurrentReads(t *testing.T) {
	seed := testSeed(t)
	es := genEntries(rand.New(rand.NewPCG(seed, 10)), 2000)
	b, _ := buildSegment(t, WriterOptions{BlockSize: 512, BloomBitsPerKey: 10, RestartInterval: 16}, es)
	for _, cache := range []*BlockCache{nil, NewBlockCache(16 << 10)} {
		r := openBytes(t, b, 1, cache)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for g := range 6 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(seed, uint64(g)))
				if g%2 == 0 {
					it := r.NewIter()
					if g == 2 {
						it = r.NewScanIter()
					}
					defer it.Close()
					for range 20 {
						uk := es[rng.IntN(len(es))].key.UserKey
						i := firstGE(es, uk)
						ok := it.SeekGE(uk)
						for j := i; j < i+50 && j < len(es); j++ {
							if !ok || base.Compare(it.Key(), es[j].key) != 0 || !bytes.Equal(it.Value(), es[j].value) {
								errs <- fmt.Errorf("seek %q +%d: valid=%v key %s, want %s (err %v)", uk, j-i, ok, it.Key(), es[j].key, it.Error())
								return
							}
							ok = it.Next()
						}
					}
					return
				}
				for range 3000 {
					e := es[rng.IntN(len(es))]
					v, kind, found, err := r.Get(e.key.UserKey, e.key.Seq)
					if err != nil || !found || kind != e.key.Kind || !bytes.Equal(v, e.value) {
						errs <- fmt.Errorf("get %s: %q %s %v %v", e.key, trunc(v), kind, found, err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		r.Close()
	}
}
