package wal

import (
	"io"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/dbx-kv/dbx/engine/vfs"
)

// benchFS returns the file systems the benchmarks run on, and a directory in
// each.
func benchFS(b *testing.B) []struct {
	name string
	fs   vfs.FS
	dir  string
} {
	return []struct {
		name string
		fs   vfs.FS
		dir  string
	}{
		{"mem", vfs.NewMem(), "."},
		{"disk", vfs.Default, b.TempDir()},
	}
}

// BenchmarkAppend appends 120-byte records, optionally syncing every 64 (a
// group commit of 64 records). "null" discards the bytes, so it measures
// the Writer alone; the log is rotated every 64 MiB, outside the timer.
func BenchmarkAppend(b *testing.B) {
	payload := randPayload(rand.New(rand.NewPCG(1, 1)), 120)
	type target struct {
		name   string
		create func(logNum uint64) vfs.File
		remove func(logNum uint64)
	}
	targets := []target{{"null", func(uint64) vfs.File { return &nullFile{} }, func(uint64) {}}}
	for _, fsys := range benchFS(b) {
		targets = append(targets, target{
			fsys.name,
			func(logNum uint64) vfs.File {
				f, err := fsys.fs.Create(walName(fsys.dir, logNum))
				if err != nil {
					b.Fatal(err)
				}
				return f
			},
			func(logNum uint64) {
				if err := fsys.fs.Remove(walName(fsys.dir, logNum)); err != nil {
					b.Fatal(err)
				}
			},
		})
	}
	for _, tg := range targets {
		for _, syncEvery := range []int{0, 64} {
			name := tg.name + "/nosync"
			if syncEvery > 0 {
				name = tg.name + "/sync" + strconv.Itoa(syncEvery)
			}
			b.Run(name, func(b *testing.B) {
				logNum := uint64(0)
				var w *Writer
				rotate := func() {
					b.StopTimer()
					if w != nil {
						if err := w.Close(); err != nil {
							b.Fatal(err)
						}
						tg.remove(logNum)
					}
					logNum++
					var err error
					if w, err = NewWriter(tg.create(logNum), logNum, DefaultWriterOptions()); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				rotate()
				b.SetBytes(int64(len(payload)))
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if err := w.Append(payload); err != nil {
						b.Fatal(err)
					}
					if i++; syncEvery > 0 && i%syncEvery == 0 {
						if err := w.Sync(); err != nil {
							b.Fatal(err)
						}
					}
					if w.Size() >= 64<<20 {
						rotate()
					}
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
				tg.remove(logNum)
			})
		}
	}
}

// nullFile is a vfs.File that keeps nothing.
type nullFile struct{ size int64 }

func (f *nullFile) Read([]byte) (int, error)          { return 0, io.EOF }
func (f *nullFile) ReadAt([]byte, int64) (int, error) { return 0, io.EOF }
func (f *nullFile) Write(p []byte) (int, error)       { f.size += int64(len(p)); return len(p), nil }
func (f *nullFile) Close() error                      { return nil }
func (f *nullFile) Sync() error                       { return nil }
func (f *nullFile) Size() (int64, error)              { return f.size, nil }
func (f *nullFile) Truncate(size int64) error         { f.size = size; return nil }

func walName(dir string, logNum uint64) string {
	return filepath.Join(dir, strconv.FormatUint(logNum, 10)+".wal")
}

// BenchmarkReplay reads back a log of 1M 120-byte records (132 MB with
// framing) from each file system.
func BenchmarkReplay(b *testing.B) {
	const records = 1 << 20
	payload := randPayload(rand.New(rand.NewPCG(1, 1)), 120)
	for _, fsys := range benchFS(b) {
		b.Run(fsys.name, func(b *testing.B) {
			name := walName(fsys.dir, 1)
			f, err := fsys.fs.Create(name)
			if err != nil {
				b.Fatal(err)
			}
			w, err := NewWriter(f, 1, DefaultWriterOptions())
			if err != nil {
				b.Fatal(err)
			}
			for range records {
				if err := w.Append(payload); err != nil {
					b.Fatal(err)
				}
			}
			size := w.Size()
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			f, err = fsys.fs.Open(name)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				r, err := NewReader(f, 1)
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for {
					p, err := r.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					if len(p) != len(payload) {
						b.Fatalf("record %d has %d bytes", n, len(p))
					}
					n++
				}
				if n != records || r.Torn() {
					b.Fatalf("replayed %d records (torn %v), want %d", n, r.Torn(), records)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*records), "ns/record")
			if err := fsys.fs.Remove(name); err != nil {
				b.Fatal(err)
			}
		})
	}
}
