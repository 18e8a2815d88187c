package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, fm := range fileMakers() {
		for _, bufferBytes := range []int{64, 4096, DefaultWriterOptions().BufferBytes} {
			t.Run(fm.name+"/buffer="+strconv.Itoa(bufferBytes), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(bufferBytes), 1))
				f, reopen := fm.create(t)
				opts := DefaultWriterOptions()
				opts.BufferBytes = bufferBytes
				w, err := NewWriter(f, 12, opts)
				if err != nil {
					t.Fatal(err)
				}
				var want [][]byte
				syncs := 0
				for i := range 2000 {
					var p []byte
					switch rng.IntN(100) {
					case 0:
						p = randPayload(rng, 300<<10+rng.IntN(1000)) // larger than any buffer
					case 1, 2:
						p = randPayload(rng, 1000+rng.IntN(5000))
					case 3:
						p = nil
					default:
						p = randPayload(rng, rng.IntN(200))
					}
					want = append(want, p)
					if rng.IntN(4) == 0 && len(p) > 0 {
						// The same payload, framed from parts.
						k, j := rng.IntN(len(p)+1), rng.IntN(len(p)+1)
						k, j = min(k, j), max(k, j)
						err = w.AppendV(p[:k], nil, p[k:j], p[j:])
					} else {
						err = w.Append(p)
					}
					if err != nil {
						t.Fatal(err)
					}
					switch {
					case i%200 == 199 && syncs < 10:
						syncs++
						err = w.Sync()
					case rng.IntN(50) == 0:
						err = w.Flush()
					}
					if err != nil {
						t.Fatal(err)
					}
				}
				size := w.Size()
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				f = reopen()
				if got, err := f.Size(); err != nil || got != size {
					t.Fatalf("file size %d (%v), Writer.Size said %d", got, err, size)
				}
				got, r, err := readAll(f, 12)
				if err != nil {
					t.Fatal(err)
				}
				if err := samePayloads(got, want); err != nil {
					t.Fatal(err)
				}
				if r.Torn() || r.ValidOffset() != size {
					t.Fatalf("Torn %v ValidOffset %d, want false and %d", r.Torn(), r.ValidOffset(), size)
				}
				got, res, err := recoverAll(f, 12)
				if err != nil {
					t.Fatal(err)
				}
				if err := samePayloads(got, want); err != nil {
					t.Fatal(err)
				}
				if want := (Result{Records: len(want), ValidOffset: size}); res != want {
					t.Fatalf("Recover: %+v, want %+v", res, want)
				}
			})
		}
	}
}

func TestWriterSizeAndFlush(t *testing.T) {
	f := newMemFile(nil)
	w, err := NewWriter(f, 3, DefaultWriterOptions())
	if err != nil {
		t.Fatal(err)
	}
	if f.syncs != 1 || len(f.data) != FileHeaderLen || w.Size() != FileHeaderLen {
		t.Fatalf("after NewWriter: %d syncs, %d bytes in file, Size %d; want the header written and synced", f.syncs, len(f.data), w.Size())
	}
	if err := w.Append([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if w.Size() != FileHeaderLen+RecordHeaderLen+5 || len(f.data) != FileHeaderLen {
		t.Fatalf("Append: Size %d, file %d bytes; want %d and %d (buffered)", w.Size(), len(f.data), FileHeaderLen+RecordHeaderLen+5, FileHeaderLen)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if int64(len(f.data)) != w.Size() || f.syncs != 1 {
		t.Fatalf("Flush: file %d bytes, %d syncs; want %d bytes and no sync", len(f.data), f.syncs, w.Size())
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if f.syncs != 2 {
		t.Fatalf("Sync: %d syncs, want 2", f.syncs)
	}
	// The format, spelled out: header, then checksum | length | ^length | payload,
	// the checksum being CRC-32C of everything after it.
	want := []byte("DBXWAL\x00\x01\x03\x00\x00\x00\x00\x00\x00\x00" +
		"CCCC\x05\x00\x00\x00\xfa\xff\xff\xffhello")
	binary.LittleEndian.PutUint32(want[16:], crc32.Checksum(want[20:], crc32.MakeTable(crc32.Castagnoli)))
	if !bytes.Equal(f.data, want) {
		t.Fatalf("file bytes\n%q\nwant\n%q", f.data, want)
	}
}

func TestNewWriterRejects(t *testing.T) {
	if _, err := NewWriter(newMemFile([]byte("x")), 1, DefaultWriterOptions()); err == nil || !strings.Contains(err.Error(), "needs an empty file") {
		t.Fatalf("non-empty file: got %v", err)
	}
	_, err := NewWriter(newMemFile(nil), 1, WriterOptions{})
	if err == nil {
		t.Fatal("zero options accepted")
	}
	for _, want := range []string{"BufferBytes (0) must be between 64 and 67108864", "MaxRecordBytes (0) must be between 1 and 67108864"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if err := DefaultWriterOptions().Validate(); err != nil {
		t.Fatal(err)
	}
	o := DefaultWriterOptions()
	o.MaxRecordBytes = MaxRecordBytes + 1
	if err := o.Validate(); err == nil {
		t.Fatal("MaxRecordBytes above the format limit accepted")
	}
}

func TestAppendTooLarge(t *testing.T) {
	f := newMemFile(nil)
	opts := DefaultWriterOptions()
	opts.MaxRecordBytes = 100
	w, err := NewWriter(f, 1, opts)
	if err != nil {
		t.Fatal(err)
	}
	p100 := bytes.Repeat([]byte{7}, 100)
	check := func(err error) {
		t.Helper()
		if !errors.Is(err, ErrRecordTooLarge) {
			t.Fatalf("got %v, want ErrRecordTooLarge", err)
		}
	}
	size := w.Size()
	check(w.Append(make([]byte, 101)))
	check(w.AppendV(p100[:50], p100[:51]))
	if w.Size() != size {
		t.Fatalf("rejected appends changed Size from %d to %d", size, w.Size())
	}
	if err := w.Append(p100); err != nil {
		t.Fatalf("payload of exactly MaxRecordBytes: %v", err)
	}
	if err := w.AppendV(p100[:50], p100[50:]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, _, err := readAll(newMemFile(f.data), 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := samePayloads(got, [][]byte{p100, p100}); err != nil {
		t.Fatal(err)
	}

	// The package limit, without allocating 64 MiB: AppendV checks the total.
	w, err = NewWriter(newMemFile(nil), 1, DefaultWriterOptions())
	if err != nil {
		t.Fatal(err)
	}
	mib := make([]byte, 1<<20)
	parts := make([][]byte, MaxRecordBytes>>20+1)
	for i := range parts {
		parts[i] = mib
	}
	err = w.AppendV(parts...)
	check(err)
	if !strings.Contains(err.Error(), "payload of 68157440 bytes, max is 67108864") {
		t.Fatalf("message %q lacks the sizes", err)
	}
}

// TestWriterBrokenAfterWriteError fails the Nth Write (after part of its
// bytes went to the file) and checks the Writer then refuses everything with
// the same error and never touches the file again.
func TestWriterBrokenAfterWriteError(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	payloads := somePayloads(rng, 40)
	for _, shortNoErr := range []bool{false, true} {
		for n := 1; n <= 12; n++ {
			f := &memFile{failWrite: n, shortBytes: 5, shortNoErr: shortNoErr}
			wantErr := errInjected
			if shortNoErr {
				wantErr = io.ErrShortWrite
			}
			opts := DefaultWriterOptions()
			opts.BufferBytes = 64
			w, err := NewWriter(f, 1, opts)
			if n == 1 {
				if !errors.Is(err, wantErr) {
					t.Fatalf("NewWriter with a failing header write: %v", err)
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			appended := 0
			var first error
			for _, p := range payloads {
				if first = w.Append(p); first != nil {
					break
				}
				appended++
			}
			if first == nil {
				first = w.Flush()
			}
			if !errors.Is(first, wantErr) {
				t.Fatalf("write %d: first error %v, want one wrapping %v", n, first, wantErr)
			}
			writes, syncs := f.writes, f.syncs
			for i, call := range []func() error{
				func() error { return w.Append([]byte("more")) },
				func() error { return w.AppendV([]byte("mo"), []byte("re")) },
				w.Flush,
				w.Sync,
				w.Close, // last: it closes the file
			} {
				if err := call(); err == nil || err.Error() != first.Error() || !errors.Is(err, wantErr) {
					t.Fatalf("write %d: call %d (Append, AppendV, Flush, Sync, Close) after the failure returned %v, want %v", n, i, err, first)
				}
			}
			if f.writes != writes || f.syncs != syncs {
				t.Fatalf("write %d: broken writer wrote %d times and synced %d times more", n, f.writes-writes, f.syncs-syncs)
			}
			if !f.closed {
				t.Fatal("Close of a broken writer did not close the file")
			}
			if err := w.Append(nil); !errors.Is(err, ErrClosed) {
				t.Fatalf("Append after Close: %v", err)
			}
			// What reached the file is a prefix of the appended records,
			// possibly followed by a torn record.
			got, _, err := readAll(newMemFile(f.data), 1)
			if err != nil {
				t.Fatalf("write %d: reading what the broken writer left: %v", n, err)
			}
			if len(got) > appended {
				t.Fatalf("write %d: %d records in the file, only %d appended before the failure", n, len(got), appended)
			}
			if err := samePayloads(got, payloads[:len(got)]); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestWriterBrokenAfterSyncError(t *testing.T) {
	f := &memFile{failSync: 2} // the first Sync is NewWriter's
	w, err := NewWriter(f, 1, DefaultWriterOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append([]byte("a")); err != nil {
		t.Fatal(err)
	}
	first := w.Sync()
	if !errors.Is(first, errInjected) {
		t.Fatalf("Sync: %v", first)
	}
	writes := f.writes
	if err := w.Append([]byte("b")); err == nil || err.Error() != first.Error() {
		t.Fatalf("Append after failed Sync: %v, want %v", err, first)
	}
	if err := w.Sync(); err == nil || err.Error() != first.Error() {
		t.Fatalf("Sync after failed Sync: %v, want %v", err, first)
	}
	if f.writes != writes || f.syncs != 2 {
		t.Fatalf("broken writer touched the file: %d writes, %d syncs", f.writes-writes, f.syncs)
	}
}

func TestWriterClose(t *testing.T) {
	f := newMemFile(nil)
	w, err := NewWriter(f, 1, DefaultWriterOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !f.closed || f.syncs != 2 || len(f.data) != FileHeaderLen+RecordHeaderLen+1 {
		t.Fatalf("Close: closed %v, %d syncs, %d bytes", f.closed, f.syncs, len(f.data))
	}
	for _, err := range []error{w.Close(), w.Append(nil), w.Flush(), w.Sync()} {
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("after Close: %v, want ErrClosed", err)
		}
	}
}
