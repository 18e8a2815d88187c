package vfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// Default is the FS backed by the operating system.
var Default FS = diskFS{}

// diskFS implements FS with package os.
type diskFS struct{}

// diskLocks is the set of lock files held by this process (absolute paths),
// kept in addition to flock(2) so that a second Lock in the same process fails
// even where flock is emulated with per-process locks (NFS).
var diskLocks = struct {
	mu   sync.Mutex
	held map[string]bool
}{held: map[string]bool{}}

// diskErr marks out-of-space errors so that they also match ErrNoSpace. Other
// errors (including io.EOF) are returned unchanged.
func diskErr(err error) error {
	if err != nil && errors.Is(err, syscall.ENOSPC) && !errors.Is(err, ErrNoSpace) {
		return &noSpaceError{err: err}
	}
	return err
}

func (diskFS) Create(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o644)
	if err != nil {
		return nil, diskErr(err)
	}
	return &diskFile{f: f}, nil
}

func (diskFS) Open(name string) (File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	return &diskFile{f: f}, nil
}

func (diskFS) OpenReadWrite(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		_ = f.Close()
		return nil, err
	}
	return &diskFile{f: f}, nil
}

func (diskFS) Remove(name string) error    { return os.Remove(name) }
func (diskFS) RemoveAll(name string) error { return os.RemoveAll(name) }

func (diskFS) Rename(oldname, newname string) error {
	return diskErr(os.Rename(oldname, newname))
}

func (diskFS) Link(oldname, newname string) error {
	return diskErr(os.Link(oldname, newname))
}

func (diskFS) MkdirAll(dir string, perm os.FileMode) error {
	return diskErr(os.MkdirAll(dir, perm))
}

func (diskFS) List(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names, nil
}

func (diskFS) Stat(name string) (os.FileInfo, error) { return os.Stat(name) }

func (diskFS) SyncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return diskErr(err)
}

func (diskFS) Lock(name string) (io.Closer, error) {
	key, err := filepath.Abs(name)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	diskLocks.mu.Lock()
	if diskLocks.held[key] {
		diskLocks.mu.Unlock()
		return nil, fmt.Errorf("lock %s: %w (held by this process)", name, ErrLocked)
	}
	diskLocks.held[key] = true // reserve; the file I/O below runs without the mutex
	diskLocks.mu.Unlock()
	release := func() {
		diskLocks.mu.Lock()
		delete(diskLocks.held, key)
		diskLocks.mu.Unlock()
	}

	f, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		release()
		return nil, diskErr(err)
	}
	if err := flock(f); err != nil {
		_ = f.Close()
		release()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock %s: %w", name, ErrLocked)
		}
		return nil, &os.PathError{Op: "flock", Path: name, Err: err}
	}
	return &diskLock{f: f, release: release}, nil
}

// diskLock is a held flock(2) lock.
type diskLock struct {
	mu      sync.Mutex
	f       *os.File // nil once closed
	release func()
}

// Close releases the lock (closing the file drops the flock). The lock file
// stays.
func (l *diskLock) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return os.ErrClosed
	}
	err := l.f.Close()
	l.f = nil
	l.release()
	return err
}

// diskFile adapts *os.File to File.
type diskFile struct{ f *os.File }

func (d *diskFile) Read(p []byte) (int, error) { return d.f.Read(p) }

func (d *diskFile) ReadAt(p []byte, off int64) (int, error) { return d.f.ReadAt(p, off) }

func (d *diskFile) Write(p []byte) (int, error) {
	n, err := d.f.Write(p)
	return n, diskErr(err)
}

func (d *diskFile) Close() error { return d.f.Close() }

// Sync uses fdatasync on Linux: file contents and size become durable.
func (d *diskFile) Sync() error { return diskErr(datasync(d.f)) }

func (d *diskFile) Size() (int64, error) {
	fi, err := d.f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// Truncate cuts the file to size bytes and, if the offset was past the new
// end, moves it to the new end.
func (d *diskFile) Truncate(size int64) error {
	if err := d.f.Truncate(size); err != nil {
		return diskErr(err)
	}
	off, err := d.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	if off > size {
		if _, err := d.f.Seek(size, io.SeekStart); err != nil {
			return err
		}
	}
	return nil
}
