package wal

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestTailDescribesTornTail damages the end of a log in each way a torn
// tail can look and checks what RecoverAt says about it: the reason, where
// replay stopped, the bytes cut, and the records it could still make out
// (with whether the count is exact), and that it still truncates.
func TestTailDescribesTornTail(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	payloads := make([][]byte, 6)
	for i := range payloads {
		payloads[i] = randPayload(rng, 40+i)
	}
	clean, offs := encode(t, 3, payloads)
	last, end := offs[5], offs[6]
	cases := []struct {
		name   string
		damage func([]byte) []byte
		want   Tail
	}{
		{"partial record header", func(d []byte) []byte { return d[:last+5] },
			Tail{Reason: TornRecordHeader, Offset: last, Bytes: 5, UnframedBytes: 5}},
		{"partial record", func(d []byte) []byte { return d[:end-10] },
			Tail{Reason: TornRecord, Offset: last, Bytes: end - 10 - last, Records: 1, CutRecord: true}},
		{"checksum mismatch", func(d []byte) []byte { d[end-1] ^= 1; return d },
			Tail{Reason: TornChecksum, Offset: last, Bytes: end - last, Records: 1}},
		{"two damaged records", func(d []byte) []byte { d[end-1] ^= 1; d[last-1] ^= 1; return d },
			Tail{Reason: TornChecksum, Offset: offs[4], Bytes: end - offs[4], Records: 2}},
		{"zeros after the last record", func(d []byte) []byte { return append(d, make([]byte, 100)...) },
			Tail{Reason: TornBadHeader, Offset: end, Bytes: 100, UnframedBytes: 100, UnframedZero: true}},
		{"zeroed end", func(d []byte) []byte { clear(d[end-30:]); return d },
			Tail{Reason: TornChecksum, Offset: last, Bytes: end - last, Records: 1}},
		{"zeroed from inside a header", func(d []byte) []byte { clear(d[last+2:]); return d },
			Tail{Reason: TornBadHeader, Offset: last, Bytes: end - last, UnframedBytes: end - last}},
		{"zeroed file", func(d []byte) []byte { clear(d); return d },
			Tail{Reason: TornZeros, Offset: 0, Bytes: end, UnframedBytes: end, UnframedZero: true}},
		{"partial file header", func(d []byte) []byte { return d[:9] },
			Tail{Reason: TornFileHeader, Offset: 0, Bytes: 9, UnframedBytes: 9}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newMemFile(c.damage(bytes.Clone(clean)))
			var starts []int64
			res, tail, err := RecoverAt(f, 3, func(off int64, p []byte) error {
				starts = append(starts, off)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if tail != c.want {
				t.Fatalf("tail %+v, want %+v", tail, c.want)
			}
			if res.ValidOffset != c.want.Offset || res.TruncatedBytes != c.want.Bytes || int64(len(f.data)) != c.want.Offset {
				t.Fatalf("result %+v, file %d bytes; want cut at %d", res, len(f.data), c.want.Offset)
			}
			if !slices.Equal(starts, offs[:len(starts)]) {
				t.Fatalf("record offsets %v, want %v", starts, offs[:len(starts)])
			}
			if tail.Exact() != (c.want.Records > 0 && !c.want.CutRecord && c.want.UnframedBytes == 0) || tail.String() == "" {
				t.Fatalf("Exact %v, String %q", tail.Exact(), tail)
			}
		})
	}
	// A clean log has no tail.
	f := newMemFile(bytes.Clone(clean))
	if res, tail, err := RecoverAt(f, 3, func(int64, []byte) error { return nil }); err != nil || tail != (Tail{}) || res.Records != 6 {
		t.Fatalf("clean log: %+v %+v %v", res, tail, err)
	}
}
