package wal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/dbx-kv/dbx/engine/vfs"
)

// memFile is an in-memory vfs.File with fault injection, used by the tests
// that need to see or damage exact bytes, and by the fuzz target.
type memFile struct {
	data   []byte
	pos    int64
	closed bool

	writes, syncs int
	// failWrite makes the failWrite-th Write (1-based) fail after storing
	// shortBytes of its input; 0 disables.
	failWrite  int
	shortBytes int
	// shortNoErr makes the failing write return a short count and no error.
	shortNoErr bool
	// failSync makes the failSync-th Sync (1-based) fail; 0 disables.
	failSync int
}

var errInjected = errors.New("test: injected fault")

var _ vfs.File = (*memFile)(nil)

func newMemFile(data []byte) *memFile { return &memFile{data: data, pos: int64(len(data))} }

func (m *memFile) Read(p []byte) (int, error) {
	if m.closed {
		return 0, os.ErrClosed
	}
	n, err := m.ReadAt(p, m.pos)
	m.pos += int64(n)
	return n, err
}

func (m *memFile) ReadAt(p []byte, off int64) (int, error) {
	if m.closed {
		return 0, os.ErrClosed
	}
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= int64(len(m.data)) {
		return 0, io.EOF
	}
	n := copy(p, m.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memFile) Write(p []byte) (int, error) {
	if m.closed {
		return 0, os.ErrClosed
	}
	m.writes++
	if m.writes == m.failWrite {
		p = p[:min(m.shortBytes, len(p))]
		m.store(p)
		if m.shortNoErr {
			return len(p), nil
		}
		return len(p), fmt.Errorf("write %d: %w", m.writes, errInjected)
	}
	m.store(p)
	return len(p), nil
}

func (m *memFile) store(p []byte) {
	if end := m.pos + int64(len(p)); end > int64(len(m.data)) {
		m.data = append(m.data, make([]byte, end-int64(len(m.data)))...)
	}
	copy(m.data[m.pos:], p)
	m.pos += int64(len(p))
}

func (m *memFile) Close() error {
	if m.closed {
		return os.ErrClosed
	}
	m.closed = true
	return nil
}

func (m *memFile) Sync() error {
	if m.closed {
		return os.ErrClosed
	}
	m.syncs++
	if m.syncs == m.failSync {
		return fmt.Errorf("sync %d: %w", m.syncs, errInjected)
	}
	return nil
}

func (m *memFile) Size() (int64, error) {
	if m.closed {
		return 0, os.ErrClosed
	}
	return int64(len(m.data)), nil
}

func (m *memFile) Truncate(size int64) error {
	if m.closed {
		return os.ErrClosed
	}
	if size < 0 || size > int64(len(m.data)) {
		return fmt.Errorf("truncate to %d of a %d-byte file", size, len(m.data))
	}
	m.data = m.data[:size]
	return nil
}

// fileMaker opens a fresh, empty vfs.File for a test; the tests that do not
// poke at bytes run against each of them.
type fileMaker struct {
	name string
	// create returns an empty file open for reading and writing, and a
	// function that reopens it (read-write) after it was closed.
	create func(t testing.TB) (f vfs.File, reopen func() vfs.File)
}

func fileMakers() []fileMaker {
	return []fileMaker{
		{"memfile", func(t testing.TB) (vfs.File, func() vfs.File) {
			f := newMemFile(nil)
			return f, func() vfs.File { return newMemFile(f.data) }
		}},
		{"disk", func(t testing.TB) (vfs.File, func() vfs.File) {
			return createFS(t, vfs.Default, filepath.Join(t.TempDir(), "000001.wal"))
		}},
		{"memfs", func(t testing.TB) (vfs.File, func() vfs.File) {
			fs := vfs.NewMem()
			if err := fs.MkdirAll("wal", 0o755); err != nil {
				t.Fatal(err)
			}
			return createFS(t, fs, "wal/000001.wal")
		}},
	}
}

func createFS(t testing.TB, fs vfs.FS, name string) (vfs.File, func() vfs.File) {
	f, err := fs.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	return f, func() vfs.File {
		f, err := fs.OpenReadWrite(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
}
