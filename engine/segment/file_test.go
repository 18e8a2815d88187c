package segment

import (
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/dbx-kv/dbx/engine/vfs"
)

// memFile is an in-memory vfs.File for tests and the fuzz target. It records
// whether it was closed and fails reads after Close.
type memFile struct {
	mu     sync.RWMutex
	data   []byte
	pos    int64
	closed atomic.Bool
	reads  atomic.Int64 // ReadAt calls
}

var _ vfs.File = (*memFile)(nil)

func newMemFile(data []byte) *memFile { return &memFile{data: data} }

func (f *memFile) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pos >= int64(len(f.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.data[f.pos:])
	f.pos += int64(n)
	return n, nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.reads.Add(1)
	if f.closed.Load() {
		return 0, os.ErrClosed
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= int64(len(f.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) Write(p []byte) (int, error) {
	if f.closed.Load() {
		return 0, os.ErrClosed
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.data = append(f.data, p...)
	return len(p), nil
}

func (f *memFile) Close() error {
	if f.closed.Swap(true) {
		return os.ErrClosed
	}
	return nil
}

func (f *memFile) Sync() error { return nil }

func (f *memFile) Size() (int64, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return int64(len(f.data)), nil
}

func (f *memFile) Truncate(size int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.data = f.data[:size]
	return nil
}

func (f *memFile) bytes() []byte {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.data
}
