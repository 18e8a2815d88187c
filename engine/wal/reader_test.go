package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dbx-kv/dbx/engine/vfs"
)

// TestTornTailEveryLength cuts a log at every length and checks that
// Recover keeps exactly the records wholly inside the cut, reports the rest
// as torn and truncates it.
func TestTornTailEveryLength(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	payloads := somePayloads(rng, 8)
	data, offs := encode(t, 9, payloads)
	for l := 0; l <= len(data); l++ {
		// The records that fit in l bytes, and where they end.
		whole, valid := 0, int64(0)
		if l >= FileHeaderLen {
			valid = FileHeaderLen
			for whole < len(payloads) && offs[whole+1] <= int64(l) {
				whole++
				valid = offs[whole]
			}
		}
		wantTorn := int64(l) != valid || l < FileHeaderLen

		got, r, err := readAll(newMemFile(bytes.Clone(data[:l])), 9)
		if err != nil {
			t.Fatalf("len %d: %v", l, err)
		}
		if err := samePayloads(got, payloads[:whole]); err != nil {
			t.Fatalf("len %d: %v", l, err)
		}
		if r.Torn() != wantTorn || r.ValidOffset() != valid {
			t.Fatalf("len %d: Torn %v ValidOffset %d, want %v %d", l, r.Torn(), r.ValidOffset(), wantTorn, valid)
		}

		f := newMemFile(bytes.Clone(data[:l]))
		got, res, err := recoverAll(f, 9)
		if err != nil {
			t.Fatalf("len %d: Recover: %v", l, err)
		}
		if err := samePayloads(got, payloads[:whole]); err != nil {
			t.Fatalf("len %d: Recover: %v", l, err)
		}
		if want := (Result{Records: whole, ValidOffset: valid, TruncatedBytes: int64(l) - valid}); res != want {
			t.Fatalf("len %d: Recover: %+v, want %+v", l, res, want)
		}
		if int64(len(f.data)) != valid || (wantTorn && f.syncs != 1) {
			t.Fatalf("len %d: after Recover the file has %d bytes (want %d), %d syncs", l, len(f.data), valid, f.syncs)
		}
		// Recovering again finds the same records and nothing to cut.
		got, res, err = recoverAll(f, 9)
		if err != nil || res.TruncatedBytes != 0 || samePayloads(got, payloads[:whole]) != nil {
			t.Fatalf("len %d: second Recover: %+v, %v", l, res, err)
		}
	}
}

// damage returns a copy of data with b XORed into the byte at i.
func damage(data []byte, i int, b byte) []byte {
	d := bytes.Clone(data)
	d[i] ^= b
	return d
}

// TestDamagedMiddleRecordIsCorrupt damages every byte of a record that has
// intact records after it, including its checksum and length fields.
func TestDamagedMiddleRecordIsCorrupt(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	payloads := somePayloads(rng, 6)
	payloads[3] = randPayload(rng, 40)
	data, offs := encode(t, 9, payloads)
	for i := offs[3]; i < offs[4]; i++ {
		for _, x := range []byte{0x01, 0x80, 0xff} {
			d := damage(data, int(i), x)
			got, r, err := readAll(newMemFile(d), 9)
			wantCorruptAt(t, err, offs[3])
			if err := samePayloads(got, payloads[:3]); err != nil {
				t.Fatalf("byte %d: %v", i, err)
			}
			if _, err2 := r.Next(); err2 != err {
				t.Fatalf("byte %d: Next after corruption returned %v, want the same %v", i, err2, err)
			}
			if r.Torn() || r.ValidOffset() != offs[3] {
				t.Fatalf("byte %d: Torn %v ValidOffset %d", i, r.Torn(), r.ValidOffset())
			}

			f := newMemFile(bytes.Clone(d))
			got, res, err := recoverAll(f, 9)
			wantCorruptAt(t, err, offs[3])
			if samePayloads(got, payloads[:3]) != nil || res != (Result{Records: 3, ValidOffset: offs[3]}) {
				t.Fatalf("byte %d: Recover %+v, %d records", i, res, len(got))
			}
			if !bytes.Equal(f.data, d) || f.syncs != 0 {
				t.Fatalf("byte %d: Recover changed a corrupt file", i)
			}
		}
	}
	// The message names the log, the offset and the evidence.
	_, _, err := readAll(newMemFile(damage(data, int(offs[3])+RecordHeaderLen+5, 1)), 9)
	want := fmt.Sprintf("wal 000009: offset %d: checksum mismatch in record of 40 bytes, but an intact record follows at offset %d (file size %d)", offs[3], offs[4], len(data))
	if err == nil || err.Error() != want {
		t.Fatalf("message\n%v\nwant\n%s", err, want)
	}
}

// TestDamagedLastRecordIsTorn damages every byte of the final record: with
// nothing intact after it, that is indistinguishable from a torn write.
func TestDamagedLastRecordIsTorn(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	payloads := somePayloads(rng, 6)
	payloads[5] = randPayload(rng, 40)
	data, offs := encode(t, 9, payloads)
	for i := offs[5]; i < offs[6]; i++ {
		for _, x := range []byte{0x01, 0x80, 0xff} {
			f := newMemFile(damage(data, int(i), x))
			got, res, err := recoverAll(f, 9)
			if err != nil {
				t.Fatalf("byte %d: %v", i, err)
			}
			if err := samePayloads(got, payloads[:5]); err != nil {
				t.Fatalf("byte %d: %v", i, err)
			}
			if want := (Result{Records: 5, ValidOffset: offs[5], TruncatedBytes: offs[6] - offs[5]}); res != want {
				t.Fatalf("byte %d: %+v, want %+v", i, res, want)
			}
			if !bytes.Equal(f.data, data[:offs[5]]) {
				t.Fatalf("byte %d: file not truncated to the last good record", i)
			}
		}
	}
}

func TestZeroTail(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	payloads := somePayloads(rng, 5)
	payloads[4] = randPayload(rng, 100)
	data, offs := encode(t, 9, payloads)
	end := int64(len(data))
	cases := map[string]struct {
		data  []byte
		whole int
	}{}
	for _, n := range []int{1, 11, 12, 13, 4096, readBufferBytes + 3} {
		cases[fmt.Sprintf("%d zeros", n)] = struct {
			data  []byte
			whole int
		}{append(bytes.Clone(data), make([]byte, n)...), 5}
	}
	// The last record's second half never reached the disk.
	half := bytes.Clone(data)
	clear(half[offs[4]+60:])
	cases["zeroed half record"] = struct {
		data  []byte
		whole int
	}{half, 4}
	for name, c := range cases {
		f := newMemFile(c.data)
		got, res, err := recoverAll(f, 9)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := samePayloads(got, payloads[:c.whole]); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		valid := offs[c.whole]
		if want := (Result{Records: c.whole, ValidOffset: valid, TruncatedBytes: int64(len(c.data)) - valid}); res != want || int64(len(f.data)) != valid {
			t.Fatalf("%s: %+v (file %d bytes), want %+v", name, res, len(f.data), want)
		}
	}

	// Zeros followed by an intact record are damage, not a torn tail.
	_, last := encode(t, 9, payloads[:1])
	d := append(bytes.Clone(data), make([]byte, 100)...)
	d = append(d, data[last[0]:last[1]]...)
	_, _, err := readAll(newMemFile(d), 9)
	wantCorruptAt(t, err, end)
}

// TestDamageBeforeTornRecord covers a tail where the last whole record is
// damaged and a partial record follows: nothing intact follows the damage,
// so it is torn. A crash that tears a sector across a record boundary
// leaves exactly this.
func TestDamageBeforeTornRecord(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	payloads := somePayloads(rng, 6)
	data, offs := encode(t, 9, payloads)
	for cut := offs[5] + 1; cut < offs[6]; cut++ {
		for garbage := int64(1); garbage <= 16 && garbage <= cut-offs[4]; garbage++ {
			d := bytes.Clone(data[:cut])
			for i := cut - garbage; i < cut; i++ {
				d[i] ^= byte(0x5a + i)
			}
			got, res, err := recoverAll(newMemFile(d), 9)
			if err != nil {
				t.Fatalf("cut %d garbage %d: %v", cut, garbage, err)
			}
			whole := 5
			if cut-garbage < offs[5] {
				whole = 4
			}
			if samePayloads(got, payloads[:whole]) != nil || res.ValidOffset != offs[whole] {
				t.Fatalf("cut %d garbage %d: %d records, %+v; want %d", cut, garbage, len(got), res, whole)
			}
		}
	}
}

// TestBadLength covers lengths the writer never produces.
func TestBadLength(t *testing.T) {
	data, offs := encode(t, 9, [][]byte{[]byte("first"), []byte("second")})
	hdr := func(n uint32) []byte {
		h := make([]byte, RecordHeaderLen)
		binary.LittleEndian.PutUint32(h[4:], n)
		binary.LittleEndian.PutUint32(h[8:], ^n)
		return h
	}
	tooLong := append(bytes.Clone(data[:offs[1]]), hdr(MaxRecordBytes+1)...)
	// At the tail: torn.
	_, res, err := recoverAll(newMemFile(bytes.Clone(tooLong)), 9)
	if err != nil || res.Records != 1 || res.TruncatedBytes != RecordHeaderLen {
		t.Fatalf("over-long record at the tail: %+v, %v", res, err)
	}
	// Followed by an intact record: corrupt.
	_, _, err = readAll(newMemFile(append(tooLong, data[offs[1]:]...)), 9)
	wantCorruptAt(t, err, offs[1])
	// A plausible length running past the end of the file is a cut record.
	_, res, err = recoverAll(newMemFile(append(bytes.Clone(data), hdr(1000)...)), 9)
	if err != nil || res.Records != 2 || res.TruncatedBytes != RecordHeaderLen {
		t.Fatalf("record running past the end: %+v, %v", res, err)
	}
}

// TestScanBudget builds a tail after a damaged record full of plausible
// record headers with bad checksums: torn with the normal budget, and
// reported as corruption (not torn) once the scan budget runs out.
func TestScanBudget(t *testing.T) {
	data, offs := encode(t, 9, [][]byte{[]byte("first"), []byte("damaged")})
	d := damage(data, int(offs[1])+RecordHeaderLen+1, 1)
	for range 40 {
		h := make([]byte, RecordHeaderLen, RecordHeaderLen+20)
		binary.LittleEndian.PutUint32(h, 0xdeadbeef)
		binary.LittleEndian.PutUint32(h[4:], 20)
		binary.LittleEndian.PutUint32(h[8:], ^uint32(20))
		d = append(d, append(h, bytes.Repeat([]byte{0xee}, 20)...)...)
	}
	_, res, err := recoverAll(newMemFile(bytes.Clone(d)), 9)
	if err != nil || res.Records != 1 || res.ValidOffset != offs[1] {
		t.Fatalf("default budget: %+v, %v; want torn after 1 record", res, err)
	}
	defer func(old int64) { scanBytesMax = old }(scanBytesMax)
	scanBytesMax = 1000
	_, _, err = readAll(newMemFile(d), 9)
	wantCorruptAt(t, err, offs[1])
	if !strings.Contains(err.Error(), "gave up looking for an intact record") {
		t.Fatalf("message: %v", err)
	}
}

func TestHeader(t *testing.T) {
	payloads := [][]byte{[]byte("a"), []byte("bc")}
	data, _ := encode(t, 7, payloads)
	check := func(name string, d []byte, want string) {
		t.Helper()
		_, _, err := readAll(newMemFile(d), 12)
		var ce *CorruptError
		if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) || ce.Offset != 0 {
			t.Fatalf("%s: got %v, want a CorruptError at offset 0", name, err)
		}
		if err.Error() != want {
			t.Fatalf("%s: message %q, want %q", name, err, want)
		}
		// Recover leaves such a file alone.
		f := newMemFile(bytes.Clone(d))
		if _, err := Recover(f, 12, func([]byte) error { return nil }); !errors.Is(err, ErrCorrupt) || !bytes.Equal(f.data, d) {
			t.Fatalf("%s: Recover: %v", name, err)
		}
	}
	check("wrong log", data, "wal 000012: header says log 7")
	check("bad magic", append([]byte("NOTAWAL!"), data[8:]...), `wal 000012: bad magic "NOTAWAL!": not a WAL file`)
	check("version 2", append([]byte("DBXWAL\x00\x02"), data[8:]...), "wal 000012: format version 2, this build reads version 1")
	zeroHeader := bytes.Clone(data)
	clear(zeroHeader[:FileHeaderLen])
	check("zeroed header", zeroHeader, `wal 000012: bad magic "\x00\x00\x00\x00\x00\x00\x00\x00": not a WAL file`)

	// The right log reads fine.
	got, _, err := readAll(newMemFile(data), 7)
	if err != nil || samePayloads(got, payloads) != nil {
		t.Fatalf("log 7: %q, %v", got, err)
	}

	// A file no longer than a header holds no record; if it is not exactly
	// the header, a crash inside NewWriter left it: torn.
	want := appendFileHeader(nil, 12)
	for _, d := range [][]byte{nil, want[:1], want[:15], []byte("garbage garbage!"), make([]byte, 16), appendFileHeader(nil, 7)} {
		got, r, err := readAll(newMemFile(bytes.Clone(d)), 12)
		if err != nil || len(got) != 0 || !r.Torn() || r.ValidOffset() != 0 {
			t.Fatalf("%q: %d records, %v, Torn %v, ValidOffset %d", d, len(got), err, r.Torn(), r.ValidOffset())
		}
	}
	got, r, err := readAll(newMemFile(want), 12)
	if err != nil || len(got) != 0 || r.Torn() || r.ValidOffset() != FileHeaderLen {
		t.Fatalf("header only: %d records, %v, Torn %v", len(got), err, r.Torn())
	}
	// A file of zeros never held anything.
	_, res, err := recoverAll(newMemFile(make([]byte, 1000)), 12)
	if err != nil || res != (Result{TruncatedBytes: 1000}) {
		t.Fatalf("zero file: %+v, %v", res, err)
	}
}

func TestRecoverCallbackError(t *testing.T) {
	payloads := somePayloads(rand.New(rand.NewPCG(1, 1)), 5)
	data, offs := encode(t, 9, payloads)
	torn := append(bytes.Clone(data), 1, 2, 3)
	f := newMemFile(bytes.Clone(torn))
	stop := errors.New("stop")
	n := 0
	res, err := Recover(f, 9, func([]byte) error {
		if n++; n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || res.Records != 2 || !bytes.Equal(f.data, torn) {
		t.Fatalf("%+v, %v; want 2 records, the callback's error and the file untouched", res, err)
	}
	if res.ValidOffset != offs[3] {
		t.Fatalf("ValidOffset %d, want %d", res.ValidOffset, offs[3])
	}
}

// TestRecoverFaults checks that Recover reports failing Truncate and Sync.
func TestRecoverFaults(t *testing.T) {
	data, _ := encode(t, 9, [][]byte{[]byte("x")})
	f := &memFile{data: append(bytes.Clone(data), 9), failSync: 1}
	if _, err := Recover(f, 9, func([]byte) error { return nil }); !errors.Is(err, errInjected) {
		t.Fatalf("failing sync: %v", err)
	}
	f.closed = true
	if _, err := Recover(f, 9, func([]byte) error { return nil }); err == nil {
		t.Fatal("closed file: no error")
	}
}

// TestCrashRecovery writes logs on vfs.MemFS, takes crash clones at random
// moments (keeping a random part of the unsynced tail, sometimes with
// garbage at its end, as a torn sector would) and checks Recover gets every
// synced record back, nothing that was not appended, and no error.
func TestCrashRecovery(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 30
	}
	for seed := range uint64(seeds) {
		rng := rand.New(rand.NewPCG(seed, 42))
		fs := vfs.NewMem()
		f, err := fs.Create("000005.wal")
		if err != nil {
			t.Fatal(err)
		}
		if err := fs.SyncDir("."); err != nil {
			t.Fatal(err)
		}
		opts := DefaultWriterOptions()
		opts.BufferBytes = 64 + rng.IntN(1024)
		w, err := NewWriter(f, 5, opts)
		if err != nil {
			t.Fatal(err)
		}
		var appended [][]byte
		synced := 0
		for range 1 + rng.IntN(30) {
			for range 1 + rng.IntN(8) {
				p := randPayload(rng, rng.IntN(300))
				if err := w.Append(p); err != nil {
					t.Fatal(err)
				}
				appended = append(appended, p)
			}
			if rng.IntN(3) > 0 {
				if err := w.Sync(); err != nil {
					t.Fatal(err)
				}
				synced = len(appended)
			}
		}
		crashed := fs.CrashClone(vfs.CrashOptions{TearUnsynced: true, GarbageTail: seed%2 == 0, Seed: seed})
		cf, err := crashed.OpenReadWrite("000005.wal")
		if err != nil {
			t.Fatal(err)
		}
		got, res, err := recoverAll(cf, 5)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if len(got) < synced || len(got) > len(appended) {
			t.Fatalf("seed %d: recovered %d records; %d were synced, %d appended", seed, len(got), synced, len(appended))
		}
		if err := samePayloads(got, appended[:len(got)]); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if size, _ := cf.Size(); size != res.ValidOffset {
			t.Fatalf("seed %d: file size %d after Recover, ValidOffset %d", seed, size, res.ValidOffset)
		}
		if err := cf.Close(); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
}

func TestReaderIOError(t *testing.T) {
	// Larger than one read window, so Next must read again.
	rng := rand.New(rand.NewPCG(1, 1))
	data, offs := encode(t, 9, [][]byte{randPayload(rng, 200<<10), randPayload(rng, 200<<10)})
	for _, shrink := range []bool{false, true} {
		f := &flakyReadFile{memFile: newMemFile(bytes.Clone(data)), shrink: shrink}
		r, err := NewReader(f, 9)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
		f.fail = true
		_, err = r.Next()
		want := errInjected
		if shrink {
			want = io.ErrUnexpectedEOF
		}
		if !errors.Is(err, want) || errors.Is(err, ErrCorrupt) || r.Torn() {
			t.Fatalf("shrink %v: got %v, want an error wrapping %v", shrink, err, want)
		}
		if r.ValidOffset() != offs[1] {
			t.Fatalf("ValidOffset %d, want %d", r.ValidOffset(), offs[1])
		}
	}
}

// flakyReadFile fails ReadAt once fail is set: with an error, or by
// returning fewer bytes and io.EOF as if the file had shrunk.
type flakyReadFile struct {
	*memFile
	fail, shrink bool
}

func (f *flakyReadFile) ReadAt(p []byte, off int64) (int, error) {
	switch {
	case !f.fail:
		return f.memFile.ReadAt(p, off)
	case f.shrink:
		n, _ := f.memFile.ReadAt(p[:len(p)/2], off)
		return n, io.EOF
	}
	return 0, errInjected
}
