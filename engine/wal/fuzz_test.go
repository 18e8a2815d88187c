package wal

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the committed fuzz seed corpus in testdata/fuzz/FuzzReader")

// fuzzLogNum is the log number FuzzReader expects in its inputs.
const fuzzLogNum = 12

// FuzzReader feeds arbitrary file contents to the Reader and Recover and
// checks what they accept: every accepted prefix re-encodes to exactly the
// same bytes, the end is a clean EOF, a torn tail or a CorruptError at the
// reader's position, and Recover leaves a file that reads back cleanly.
func FuzzReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecode(t, data)
	})
}

func checkDecode(t *testing.T, data []byte) {
	r, err := NewReader(newMemFile(bytes.Clone(data)), fuzzLogNum)
	if err != nil {
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.Offset != 0 || len(data) <= FileHeaderLen {
			t.Fatalf("NewReader: %v", err)
		}
		return
	}
	var got [][]byte
	for range len(data)/RecordHeaderLen + 2 {
		var p []byte
		if p, err = r.Next(); err != nil {
			break
		}
		got = append(got, bytes.Clone(p))
	}
	valid := r.ValidOffset()
	switch {
	case err == io.EOF && r.Torn():
		if valid >= int64(len(data)) && len(data) > 0 {
			t.Fatalf("torn at ValidOffset %d of a %d-byte file", valid, len(data))
		}
	case err == io.EOF:
		if valid != int64(len(data)) {
			t.Fatalf("clean EOF at %d of a %d-byte file", valid, len(data))
		}
	case errors.Is(err, ErrCorrupt):
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.Offset != valid || valid >= int64(len(data)) {
			t.Fatalf("corruption %v reported with ValidOffset %d, file of %d bytes", err, valid, len(data))
		}
	case err == nil:
		t.Fatalf("more records than the file can hold")
	default:
		t.Fatalf("Next: %v", err)
	}

	// The accepted prefix is exactly what the Writer produces for the
	// records read: the decoder accepts no other encoding.
	if valid > 0 {
		enc, _ := encode(t, fuzzLogNum, got)
		if !bytes.Equal(enc, data[:valid]) {
			t.Fatalf("records read re-encode to\n%q\nbut the file starts with\n%q", enc, data[:valid])
		}
	} else if len(got) > 0 {
		t.Fatalf("%d records and ValidOffset 0", len(got))
	}

	// Recover agrees, and what it leaves reads back cleanly.
	mf := newMemFile(bytes.Clone(data))
	rgot, res, rerr := recoverAll(mf, fuzzLogNum)
	if (rerr == nil) != (err == io.EOF) || (rerr != nil && rerr.Error() != err.Error()) {
		t.Fatalf("Recover returned %v, Reader %v", rerr, err)
	}
	if res.Records != len(got) || samePayloads(rgot, got) != nil || res.ValidOffset != valid {
		t.Fatalf("Recover %+v, Reader %d records ending at %d", res, len(got), valid)
	}
	if rerr != nil {
		if !bytes.Equal(mf.data, data) {
			t.Fatal("Recover changed a file it could not recover")
		}
		return
	}
	if int64(len(mf.data)) != valid || res.TruncatedBytes != int64(len(data))-valid {
		t.Fatalf("after Recover %+v the file has %d bytes", res, len(mf.data))
	}
	again, res2, err := recoverAll(mf, fuzzLogNum)
	if err != nil || res2.TruncatedBytes != 0 || samePayloads(again, got) != nil {
		t.Fatalf("second Recover: %+v, %v", res2, err)
	}
}

// fuzzSeeds returns the committed seed corpus of FuzzReader: logs made by
// the Writer, whole and damaged in the ways the tests care about.
func fuzzSeeds(t testing.TB) map[string][]byte {
	payloads := [][]byte{[]byte("first"), {}, []byte("\x00\x01\x02\xff binary"), bytes.Repeat([]byte("x"), 40), []byte("last record")}
	data, offs := encode(t, fuzzLogNum, payloads)
	flip := func(i int64) []byte { d := bytes.Clone(data); d[i] ^= 0x40; return d }
	other, _ := encode(t, 7, payloads[:2])
	return map[string][]byte{
		"valid":            data,
		"header-only":      data[:FileHeaderLen],
		"torn-header":      data[:FileHeaderLen-5],
		"torn-record":      data[:len(data)-4],
		"torn-record-head": data[:offs[4]+7],
		"corrupt-checksum": flip(offs[2] + 1),
		"corrupt-payload":  flip(offs[3] + RecordHeaderLen + 3),
		"corrupt-length":   flip(offs[1] + 5),
		"damaged-last":     flip(offs[4] + RecordHeaderLen + 2),
		"zero-tail":        append(bytes.Clone(data), make([]byte, 30)...),
		"zero-gap":         slices.Concat(data[:offs[2]], make([]byte, 20), data[offs[2]:]),
		"wrong-log":        other,
		"bad-magic":        append([]byte("DBXWAX\x00\x01"), data[8:]...),
	}
}

// TestFuzzCorpus checks the committed seed corpus is what fuzzSeeds makes
// (run with -rewrite to regenerate it) and that every seed passes.
func TestFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzReader")
	seeds := fuzzSeeds(t)
	if *rewrite {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range seeds {
		t.Run(name, func(t *testing.T) { checkDecode(t, data) })
		want := fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", data)
		path := filepath.Join(dir, name)
		if *rewrite {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is missing or stale (%v); run go test ./engine/wal -run TestFuzzCorpus -rewrite", path, err)
		}
	}
}
