package vfs

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
)

// Op names a kind of file-system operation, for error injection.
type Op int

// The operations ErrorFS asks its Injector about. File.Size counts as OpStat;
// OpenReadWrite as OpOpen; RemoveAll as OpRemove; MkdirAll as OpMkdir.
const (
	OpCreate Op = iota
	OpOpen
	OpRead
	OpReadAt
	OpWrite
	OpSync
	OpRemove
	OpRename
	OpLink
	OpMkdir
	OpList
	OpStat
	OpSyncDir
	OpTruncate
	OpLock
	numOps
)

var opNames = [numOps]string{
	OpCreate:   "create",
	OpOpen:     "open",
	OpRead:     "read",
	OpReadAt:   "readat",
	OpWrite:    "write",
	OpSync:     "sync",
	OpRemove:   "remove",
	OpRename:   "rename",
	OpLink:     "link",
	OpMkdir:    "mkdir",
	OpList:     "list",
	OpStat:     "stat",
	OpSyncDir:  "syncdir",
	OpTruncate: "truncate",
	OpLock:     "lock",
}

func (o Op) String() string {
	if o >= 0 && o < numOps {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// opSet is a set of Ops; the empty set means every Op.
type opSet uint32

func makeOpSet(ops []Op) opSet {
	var s opSet
	for _, o := range ops {
		s |= 1 << uint(o)
	}
	return s
}

func (s opSet) has(o Op) bool { return s == 0 || s&(1<<uint(o)) != 0 }

// Injector decides whether an operation fails. ErrorFS calls MaybeError before
// each operation, from the goroutine performing it, so implementations must be
// safe for concurrent use. A non-nil result is returned to the caller as is
// and the operation is not performed.
type Injector interface {
	MaybeError(op Op, name string) error
}

// InjectorFunc adapts a function to Injector.
type InjectorFunc func(op Op, name string) error

// MaybeError returns f(op, name).
func (f InjectorFunc) MaybeError(op Op, name string) error { return f(op, name) }

// InjectedError is the error the provided injectors return. It wraps
// ErrInjected.
type InjectedError struct {
	Op   Op
	Name string
}

func (e *InjectedError) Error() string {
	return fmt.Sprintf("%s: %s %s", ErrInjected.Error(), e.Op, e.Name)
}

// Unwrap returns ErrInjected.
func (e *InjectedError) Unwrap() error { return ErrInjected }

// IndexInjector fails the n-th matching operation (counting from 0) and no
// other. Create one with OnIndex.
type IndexInjector struct {
	n     int64
	ops   opSet
	count atomic.Int64
}

// OnIndex returns an injector that fails the n-th (0-based) operation among
// ops (all operations if ops is empty), counted atomically across goroutines.
// With n < 0 it never fails and only counts: run a workload once with
// OnIndex(-1, ...) to learn Count, then once per index in [0, Count).
func OnIndex(n int64, ops ...Op) *IndexInjector {
	return &IndexInjector{n: n, ops: makeOpSet(ops)}
}

// MaybeError implements Injector.
func (i *IndexInjector) MaybeError(op Op, name string) error {
	if !i.ops.has(op) {
		return nil
	}
	if i.count.Add(1)-1 == i.n {
		return &InjectedError{Op: op, Name: name}
	}
	return nil
}

// Count reports how many matching operations have been seen.
func (i *IndexInjector) Count() int64 { return i.count.Load() }

// Fired reports whether the error has been injected.
func (i *IndexInjector) Fired() bool { return i.n >= 0 && i.count.Load() > i.n }

// RandomInjector fails each matching operation with a fixed probability.
// Create one with Random.
type RandomInjector struct {
	rate     float64
	ops      opSet
	mu       sync.Mutex
	rng      *rand.Rand // guarded by mu
	injected atomic.Int64
}

// Random returns an injector that fails each operation among ops (all
// operations if ops is empty) with probability rate, drawing from a source
// seeded with seed. The sequence of decisions is deterministic for a seed; the
// run is deterministic if the order of operations is.
func Random(rate float64, seed int64, ops ...Op) *RandomInjector {
	return &RandomInjector{
		rate: rate,
		ops:  makeOpSet(ops),
		rng:  rand.New(rand.NewPCG(uint64(seed), 0x76667320)),
	}
}

// MaybeError implements Injector.
func (r *RandomInjector) MaybeError(op Op, name string) error {
	if !r.ops.has(op) {
		return nil
	}
	r.mu.Lock()
	fail := r.rng.Float64() < r.rate
	r.mu.Unlock()
	if !fail {
		return nil
	}
	r.injected.Add(1)
	return &InjectedError{Op: op, Name: name}
}

// Injected reports how many errors have been injected.
func (r *RandomInjector) Injected() int64 { return r.injected.Load() }

// WithErrors returns an FS that forwards to fs, but first asks inj about each
// operation and returns its error instead of performing the operation. Files
// opened through it are wrapped likewise. File.Close and closing a lock are
// never failed.
func WithErrors(fs FS, inj Injector) FS {
	return &errorFS{fs: fs, inj: inj}
}

// errorFS is the FS returned by WithErrors.
type errorFS struct {
	fs  FS
	inj Injector
}

func (e *errorFS) file(f File, err error, name string) (File, error) {
	if err != nil {
		return nil, err
	}
	return &errorFile{f: f, name: name, inj: e.inj}, nil
}

func (e *errorFS) Create(name string) (File, error) {
	if err := e.inj.MaybeError(OpCreate, name); err != nil {
		return nil, err
	}
	f, err := e.fs.Create(name)
	return e.file(f, err, name)
}

func (e *errorFS) Open(name string) (File, error) {
	if err := e.inj.MaybeError(OpOpen, name); err != nil {
		return nil, err
	}
	f, err := e.fs.Open(name)
	return e.file(f, err, name)
}

func (e *errorFS) OpenReadWrite(name string) (File, error) {
	if err := e.inj.MaybeError(OpOpen, name); err != nil {
		return nil, err
	}
	f, err := e.fs.OpenReadWrite(name)
	return e.file(f, err, name)
}

func (e *errorFS) Remove(name string) error {
	if err := e.inj.MaybeError(OpRemove, name); err != nil {
		return err
	}
	return e.fs.Remove(name)
}

func (e *errorFS) RemoveAll(name string) error {
	if err := e.inj.MaybeError(OpRemove, name); err != nil {
		return err
	}
	return e.fs.RemoveAll(name)
}

func (e *errorFS) Rename(oldname, newname string) error {
	if err := e.inj.MaybeError(OpRename, oldname); err != nil {
		return err
	}
	return e.fs.Rename(oldname, newname)
}

func (e *errorFS) Link(oldname, newname string) error {
	if err := e.inj.MaybeError(OpLink, oldname); err != nil {
		return err
	}
	return e.fs.Link(oldname, newname)
}

func (e *errorFS) MkdirAll(dir string, perm os.FileMode) error {
	if err := e.inj.MaybeError(OpMkdir, dir); err != nil {
		return err
	}
	return e.fs.MkdirAll(dir, perm)
}

func (e *errorFS) List(dir string) ([]string, error) {
	if err := e.inj.MaybeError(OpList, dir); err != nil {
		return nil, err
	}
	return e.fs.List(dir)
}

func (e *errorFS) Stat(name string) (os.FileInfo, error) {
	if err := e.inj.MaybeError(OpStat, name); err != nil {
		return nil, err
	}
	return e.fs.Stat(name)
}

func (e *errorFS) SyncDir(dir string) error {
	if err := e.inj.MaybeError(OpSyncDir, dir); err != nil {
		return err
	}
	return e.fs.SyncDir(dir)
}

func (e *errorFS) Lock(name string) (io.Closer, error) {
	if err := e.inj.MaybeError(OpLock, name); err != nil {
		return nil, err
	}
	return e.fs.Lock(name)
}

// errorFile is a File opened through an errorFS.
type errorFile struct {
	f    File
	name string
	inj  Injector
}

func (e *errorFile) Read(p []byte) (int, error) {
	if err := e.inj.MaybeError(OpRead, e.name); err != nil {
		return 0, err
	}
	return e.f.Read(p)
}

func (e *errorFile) ReadAt(p []byte, off int64) (int, error) {
	if err := e.inj.MaybeError(OpReadAt, e.name); err != nil {
		return 0, err
	}
	return e.f.ReadAt(p, off)
}

func (e *errorFile) Write(p []byte) (int, error) {
	if err := e.inj.MaybeError(OpWrite, e.name); err != nil {
		return 0, err
	}
	return e.f.Write(p)
}

func (e *errorFile) Close() error { return e.f.Close() }

func (e *errorFile) Sync() error {
	if err := e.inj.MaybeError(OpSync, e.name); err != nil {
		return err
	}
	return e.f.Sync()
}

func (e *errorFile) Size() (int64, error) {
	if err := e.inj.MaybeError(OpStat, e.name); err != nil {
		return 0, err
	}
	return e.f.Size()
}

func (e *errorFile) Truncate(size int64) error {
	if err := e.inj.MaybeError(OpTruncate, e.name); err != nil {
		return err
	}
	return e.f.Truncate(size)
}
