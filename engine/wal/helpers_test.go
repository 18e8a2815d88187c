package wal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/dbx-kv/dbx/engine/vfs"
)

// encode returns the bytes of log logNum holding payloads, and the offset at
// which each record starts (plus, last, the end of the log).
func encode(t testing.TB, logNum uint64, payloads [][]byte) ([]byte, []int64) {
	t.Helper()
	f := newMemFile(nil)
	w, err := NewWriter(f, logNum, DefaultWriterOptions())
	if err != nil {
		t.Fatal(err)
	}
	offs := []int64{w.Size()}
	for _, p := range payloads {
		if err := w.Append(p); err != nil {
			t.Fatal(err)
		}
		offs = append(offs, w.Size())
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return f.data, offs
}

// readAll reads f to the end with a Reader, copying the payloads. err is
// nil at a clean or torn end.
func readAll(f vfs.File, logNum uint64) (payloads [][]byte, r *Reader, err error) {
	r, err = NewReader(f, logNum)
	if err != nil {
		return nil, nil, err
	}
	for {
		p, err := r.Next()
		if err == io.EOF {
			return payloads, r, nil
		}
		if err != nil {
			return payloads, r, err
		}
		payloads = append(payloads, bytes.Clone(p))
	}
}

// recoverAll runs Recover, copying the payloads.
func recoverAll(f vfs.File, logNum uint64) ([][]byte, Result, error) {
	var got [][]byte
	res, err := Recover(f, logNum, func(p []byte) error {
		got = append(got, bytes.Clone(p))
		return nil
	})
	return got, res, err
}

// samePayloads reports the first difference between got and want.
func samePayloads(got, want [][]byte) error {
	for i := range min(len(got), len(want)) {
		if !bytes.Equal(got[i], want[i]) {
			return fmt.Errorf("record %d: got %d bytes %.16x..., want %d bytes %.16x...", i, len(got[i]), got[i], len(want[i]), want[i])
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("got %d records, want %d", len(got), len(want))
	}
	return nil
}

// randPayload returns a payload of n random bytes; every byte is non-zero
// so damage tests are not confused by zero runs inside payloads.
func randPayload(rng *rand.Rand, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(1 + rng.IntN(255))
	}
	return p
}

// somePayloads returns n payloads of assorted small sizes, including empty.
func somePayloads(rng *rand.Rand, n int) [][]byte {
	ps := make([][]byte, n)
	for i := range ps {
		switch rng.IntN(8) {
		case 0:
			ps[i] = []byte{}
		case 1:
			ps[i] = randPayload(rng, 1+rng.IntN(3))
		default:
			ps[i] = randPayload(rng, 20+rng.IntN(100))
		}
	}
	return ps
}

func wantCorruptAt(t *testing.T, err error, off int64) {
	t.Helper()
	var ce *CorruptError
	if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) {
		t.Fatalf("got error %v, want a *CorruptError", err)
	}
	if ce.Offset != off {
		t.Fatalf("corruption reported at offset %d, want %d (%v)", ce.Offset, off, err)
	}
}
