package vfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// MemFS is an in-memory FS that remembers what is durable, so that CrashClone
// can produce the state a power loss would leave. It is safe for concurrent
// use. The zero value is not usable; call NewMem.
//
// Paths are cleaned and taken relative to the root: "/db/a", "db/a" and
// "db/../db/a" name the same file.
type MemFS struct {
	// mu guards everything below and every memNode and memFile of this FS.
	mu       sync.RWMutex
	root     *memNode
	locks    map[string]bool // cleaned paths of held locks
	capacity int64           // bytes; 0 = unlimited
	used     int64           // bytes of live files
	nextIno  uint64

	syncs    atomic.Int64 // File.Sync calls
	syncDirs atomic.Int64 // SyncDir calls (and Sync on a directory handle)
}

// memNode is an inode: a file or a directory.
type memNode struct {
	ino     uint64
	isDir   bool
	mode    os.FileMode
	modTime time.Time

	// Files. The durable content is data[:syncedLen], unless diverged, in
	// which case it is synced: a write below syncedLen or a truncation below
	// it since the last Sync moved data to a fresh array and kept the old
	// bytes here.
	data      []byte
	syncedLen int
	diverged  bool
	synced    []byte
	nlink     int // names referring to the file
	opens     int // open handles

	// Directories: the live entries and the entries as of the last SyncDir.
	children       map[string]*memNode
	syncedChildren map[string]*memNode
}

// durable returns the content that survives a crash (not a copy).
func (n *memNode) durable() []byte {
	if n.diverged {
		return n.synced
	}
	return n.data[:n.syncedLen]
}

// keepSynced makes n.data safe to modify below syncedLen: it sets the durable
// bytes aside and gives data a fresh array holding its first keep bytes.
func (n *memNode) keepSynced(keep int) {
	if n.diverged || n.syncedLen == 0 {
		return
	}
	n.synced = n.data[:n.syncedLen:n.syncedLen]
	n.diverged = true
	n.data = bytes.Clone(n.data[:keep])
}

// NewMem returns an empty MemFS whose root directory exists.
func NewMem() *MemFS {
	m := &MemFS{locks: map[string]bool{}}
	m.root = m.newDir(0o755)
	return m
}

func (m *MemFS) newDir(perm os.FileMode) *memNode {
	m.nextIno++
	return &memNode{
		ino:            m.nextIno,
		isDir:          true,
		mode:           fs.ModeDir | perm.Perm(),
		modTime:        time.Now(),
		children:       map[string]*memNode{},
		syncedChildren: map[string]*memNode{},
	}
}

func (m *MemFS) newFile() *memNode {
	m.nextIno++
	return &memNode{ino: m.nextIno, mode: 0o644, modTime: time.Now()}
}

// cleanPath returns name as a cleaned absolute slash path.
func cleanPath(name string) string {
	return path.Clean("/" + filepath.ToSlash(name))
}

// walk returns the node at the cleaned path p.
func (m *MemFS) walk(p string) (*memNode, error) {
	n := m.root
	if p == "/" {
		return n, nil
	}
	for _, c := range strings.Split(p[1:], "/") {
		if !n.isDir {
			return nil, syscall.ENOTDIR
		}
		next := n.children[c]
		if next == nil {
			return nil, fs.ErrNotExist
		}
		n = next
	}
	return n, nil
}

// parent returns the directory that holds name, and name's last element.
func (m *MemFS) parent(name string) (*memNode, string, error) {
	p := cleanPath(name)
	if p == "/" {
		return nil, "", syscall.EINVAL
	}
	dirPath, base := path.Split(p)
	dir, err := m.walk(path.Clean(dirPath))
	if err != nil {
		return nil, "", err
	}
	if !dir.isDir {
		return nil, "", syscall.ENOTDIR
	}
	return dir, base, nil
}

// reserve accounts for grow more bytes, failing if the capacity would be
// exceeded.
func (m *MemFS) reserve(grow int64) error {
	if grow <= 0 {
		return nil
	}
	if m.capacity > 0 && m.used+grow > m.capacity {
		return &noSpaceError{err: syscall.ENOSPC}
	}
	m.used += grow
	return nil
}

// unlink drops one name of the file n.
func (m *MemFS) unlink(n *memNode) {
	n.nlink--
	m.maybeRelease(n)
}

// maybeRelease returns the space of a file that has neither names nor open
// handles. The bytes stay in memory: a directory's synced entries may still
// refer to the file, and CrashClone would bring it back.
func (m *MemFS) maybeRelease(n *memNode) {
	if n.nlink == 0 && n.opens == 0 {
		m.used -= int64(len(n.data))
	}
}

// unlinkTree drops every file name under n (n already detached).
func (m *MemFS) unlinkTree(n *memNode) {
	if !n.isDir {
		m.unlink(n)
		return
	}
	for _, c := range n.children {
		m.unlinkTree(c)
	}
}

// truncate sets the size of file n, zero-filling growth.
func (m *MemFS) truncate(n *memNode, size int64) error {
	old := int64(len(n.data))
	switch {
	case size < old:
		if size < int64(n.syncedLen) && !n.diverged {
			n.keepSynced(int(size))
		} else {
			n.data = n.data[:size]
		}
		m.used -= old - size
	case size > old:
		if err := m.reserve(size - old); err != nil {
			return err
		}
		n.data = append(n.data, make([]byte, size-old)...)
	}
	n.modTime = time.Now()
	return nil
}

// writeAt writes p into file n at off; all or nothing.
func (m *MemFS) writeAt(n *memNode, p []byte, off int64) error {
	end := off + int64(len(p))
	if err := m.reserve(end - int64(len(n.data))); err != nil {
		return err
	}
	if off < int64(n.syncedLen) && len(p) > 0 {
		n.keepSynced(len(n.data))
	}
	if off > int64(len(n.data)) {
		n.data = append(n.data, make([]byte, off-int64(len(n.data)))...)
	}
	if end > int64(len(n.data)) {
		n.data = append(n.data[:off], p...)
	} else {
		copy(n.data[off:], p)
	}
	n.modTime = time.Now()
	return nil
}

// Create creates name, or truncates it if it exists (keeping its inode, so
// hard links see the truncation), and opens it for reading and writing.
func (m *MemFS) Create(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base, err := m.parent(name)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	n := dir.children[base]
	switch {
	case n == nil:
		n = m.newFile()
		n.nlink = 1
		dir.children[base] = n
	case n.isDir:
		return nil, &os.PathError{Op: "open", Path: name, Err: syscall.EISDIR}
	default:
		_ = m.truncate(n, 0) // shrinking cannot fail
	}
	n.opens++
	return &memFile{fs: m, n: n, name: name}, nil
}

// Open opens name read-only. A directory may be opened; its Sync is SyncDir.
func (m *MemFS) Open(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.walk(cleanPath(name))
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	if !n.isDir {
		n.opens++
	}
	return &memFile{fs: m, n: n, name: name, readOnly: true}, nil
}

// OpenReadWrite opens an existing file for reading and writing, positioned at
// its end.
func (m *MemFS) OpenReadWrite(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.walk(cleanPath(name))
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	if n.isDir {
		return nil, &os.PathError{Op: "open", Path: name, Err: syscall.EISDIR}
	}
	n.opens++
	return &memFile{fs: m, n: n, name: name, off: int64(len(n.data))}, nil
}

// Remove removes a file or an empty directory. Open handles of a removed file
// keep working.
func (m *MemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base, err := m.parent(name)
	if err != nil {
		return &os.PathError{Op: "remove", Path: name, Err: err}
	}
	n := dir.children[base]
	if n == nil {
		return &os.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	if n.isDir && len(n.children) > 0 {
		return &os.PathError{Op: "remove", Path: name, Err: syscall.ENOTEMPTY}
	}
	delete(dir.children, base)
	if !n.isDir {
		m.unlink(n)
	}
	return nil
}

// RemoveAll removes name and everything under it. It returns nil if name does
// not exist. Like every removal, it is durable only after SyncDir of the
// parent of name.
func (m *MemFS) RemoveAll(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base, err := m.parent(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return &os.PathError{Op: "removeall", Path: name, Err: err}
	}
	n := dir.children[base]
	if n == nil {
		return nil
	}
	delete(dir.children, base)
	m.unlinkTree(n)
	return nil
}

// Rename renames oldname to newname, replacing newname if it is a file (or an
// empty directory when oldname is a directory).
func (m *MemFS) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	lerr := func(err error) error {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	odir, obase, err := m.parent(oldname)
	if err != nil {
		return lerr(err)
	}
	n := odir.children[obase]
	if n == nil {
		return lerr(fs.ErrNotExist)
	}
	ndir, nbase, err := m.parent(newname)
	if err != nil {
		return lerr(err)
	}
	t := ndir.children[nbase]
	if t == n {
		return nil // same name, or two links to one inode: nothing to do
	}
	if n.isDir {
		op, np := cleanPath(oldname), cleanPath(newname)
		if strings.HasPrefix(np+"/", op+"/") {
			return lerr(syscall.EINVAL) // into its own subtree
		}
	}
	if t != nil {
		switch {
		case n.isDir && !t.isDir:
			return lerr(syscall.ENOTDIR)
		case !n.isDir && t.isDir:
			return lerr(syscall.EISDIR)
		case t.isDir && len(t.children) > 0:
			return lerr(syscall.ENOTEMPTY)
		}
	}
	delete(odir.children, obase)
	ndir.children[nbase] = n
	if t != nil && !t.isDir {
		m.unlink(t)
	}
	return nil
}

// Link creates newname as a hard link to the file oldname.
func (m *MemFS) Link(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	lerr := func(err error) error {
		return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: err}
	}
	n, err := m.walk(cleanPath(oldname))
	if err != nil {
		return lerr(err)
	}
	if n.isDir {
		return lerr(syscall.EPERM)
	}
	ndir, nbase, err := m.parent(newname)
	if err != nil {
		return lerr(err)
	}
	if ndir.children[nbase] != nil {
		return lerr(fs.ErrExist)
	}
	ndir.children[nbase] = n
	n.nlink++
	return nil
}

// MkdirAll creates dir and any missing parents.
func (m *MemFS) MkdirAll(dir string, perm os.FileMode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := cleanPath(dir)
	n := m.root
	if p == "/" {
		return nil
	}
	for _, c := range strings.Split(p[1:], "/") {
		next := n.children[c]
		if next == nil {
			next = m.newDir(perm)
			n.children[c] = next
		} else if !next.isDir {
			return &os.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		n = next
	}
	return nil
}

// List returns the sorted names of the entries of dir.
func (m *MemFS) List(dir string) ([]string, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	n, err := m.walk(cleanPath(dir))
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	if !n.isDir {
		return nil, &os.PathError{Op: "readdirent", Path: dir, Err: syscall.ENOTDIR}
	}
	return slices.Sorted(maps.Keys(n.children)), nil
}

// Stat describes name. Sys returns nil.
func (m *MemFS) Stat(name string) (os.FileInfo, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	p := cleanPath(name)
	n, err := m.walk(p)
	if err != nil {
		return nil, &os.PathError{Op: "stat", Path: name, Err: err}
	}
	return n.info(path.Base(p)), nil
}

// SyncDir makes the current entries of dir durable.
func (m *MemFS) SyncDir(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.walk(cleanPath(dir))
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	if !n.isDir {
		return &os.PathError{Op: "sync", Path: dir, Err: syscall.ENOTDIR}
	}
	n.syncedChildren = maps.Clone(n.children)
	m.syncDirs.Add(1)
	return nil
}

// Lock takes an in-process exclusive lock on name, creating the file if
// needed. A second Lock of the same name fails with an error wrapping
// ErrLocked until the first is closed.
func (m *MemFS) Lock(name string) (io.Closer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := cleanPath(name)
	if m.locks[key] {
		return nil, fmt.Errorf("lock %s: %w", name, ErrLocked)
	}
	dir, base, err := m.parent(name)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	switch n := dir.children[base]; {
	case n == nil:
		n = m.newFile()
		n.nlink = 1
		dir.children[base] = n
	case n.isDir:
		return nil, &os.PathError{Op: "open", Path: name, Err: syscall.EISDIR}
	}
	m.locks[key] = true
	return &memLock{fs: m, key: key}, nil
}

// memLock is a held MemFS lock.
type memLock struct {
	fs     *MemFS
	key    string
	closed bool // guarded by fs.mu
}

func (l *memLock) Close() error {
	l.fs.mu.Lock()
	defer l.fs.mu.Unlock()
	if l.closed {
		return os.ErrClosed
	}
	l.closed = true
	delete(l.fs.locks, l.key)
	return nil
}

// SetCapacity limits the bytes the files of m may hold to n; 0 means
// unlimited.
// A Write or growing Truncate that would exceed the limit fails with an error
// wrapping ErrNoSpace (and matching syscall.ENOSPC) and changes nothing.
// Lowering the capacity below Used does not drop data.
func (m *MemFS) SetCapacity(n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.capacity = max(n, 0)
}

// Used reports the bytes held by live files: every file that has a name or
// an open handle, each inode counted once.
func (m *MemFS) Used() int64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.used
}

// SyncCount reports how many times File.Sync has been called on files of m.
func (m *MemFS) SyncCount() int64 { return m.syncs.Load() }

// SyncDirCount reports how many times SyncDir (or Sync on a directory handle)
// has been called on m.
func (m *MemFS) SyncDirCount() int64 { return m.syncDirs.Load() }

// CrashOptions controls what CrashClone keeps beyond the synced state.
type CrashOptions struct {
	// TearUnsynced keeps, for each surviving file whose only unsynced change
	// is bytes appended past its synced length, a random-length prefix
	// (possibly empty, possibly all) of those bytes.
	TearUnsynced bool
	// GarbageTail, with TearUnsynced, replaces the last 1 to 16 of the kept
	// unsynced bytes of a file with random bytes, like a torn sector. Synced
	// bytes are never changed.
	GarbageTail bool
	// Rand is the source of randomness. If nil, one is seeded from Seed, so a
	// given Seed always gives the same clone of the same state.
	Rand *rand.Rand
	// Seed seeds the randomness when Rand is nil.
	Seed uint64
}

// CrashClone returns a new, independent MemFS holding what would survive a
// power loss now:
//
//   - each directory holds the entries it had at its last SyncDir (the root
//     always exists); entries created, removed, renamed or linked since are
//     rolled back;
//   - each surviving file holds its content as of its last Sync (plus a torn
//     tail under opts.TearUnsynced); a file whose entry was never synced is
//     gone even if its data was synced;
//   - names that shared an inode still share one;
//   - no file is open and no lock is held; the capacity is kept; everything
//     in the clone is durable and its counters start at zero.
//
// The walk is in name order, so the result is deterministic for a given
// random source. CrashClone may run concurrently with other calls.
func (m *MemFS) CrashClone(opts CrashOptions) *MemFS {
	rng := opts.Rand
	if rng == nil && opts.TearUnsynced {
		rng = rand.New(rand.NewPCG(opts.Seed, 0x64627876))
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	c := &MemFS{locks: map[string]bool{}, capacity: m.capacity, nextIno: m.nextIno}
	cl := cloner{c: c, opts: opts, rng: rng, files: map[*memNode]*memNode{}, dirs: map[*memNode]bool{}}
	c.root = cl.dir(m.root)
	return c
}

// cloner builds a crash clone.
type cloner struct {
	c     *MemFS
	opts  CrashOptions
	rng   *rand.Rand
	files map[*memNode]*memNode // original file -> clone, so hard links stay shared
	dirs  map[*memNode]bool     // directories already cloned
}

func (cl *cloner) dir(d *memNode) *memNode {
	cl.dirs[d] = true
	nd := &memNode{
		ino: d.ino, isDir: true, mode: d.mode, modTime: d.modTime,
		children: map[string]*memNode{},
	}
	for _, name := range slices.Sorted(maps.Keys(d.syncedChildren)) {
		child := d.syncedChildren[name]
		if child.isDir {
			// Synced entries from different moments can name one directory
			// twice (or even form a cycle); keep the first, as fsck would.
			if cl.dirs[child] {
				continue
			}
			nd.children[name] = cl.dir(child)
			continue
		}
		nf := cl.files[child]
		if nf == nil {
			nf = cl.file(child)
			cl.files[child] = nf
			cl.c.used += int64(len(nf.data))
		}
		nf.nlink++
		nd.children[name] = nf
	}
	nd.syncedChildren = maps.Clone(nd.children)
	return nd
}

func (cl *cloner) file(n *memNode) *memNode {
	content := bytes.Clone(n.durable())
	if content == nil {
		content = []byte{}
	}
	if cl.opts.TearUnsynced && !n.diverged && len(n.data) > n.syncedLen {
		tail := n.data[n.syncedLen:]
		k := cl.rng.IntN(len(tail) + 1)
		content = append(content, tail[:k]...)
		if cl.opts.GarbageTail && k > 0 {
			g := 1 + cl.rng.IntN(min(k, 16))
			for i := len(content) - g; i < len(content); i++ {
				content[i] = byte(cl.rng.Uint32())
			}
		}
	}
	return &memNode{
		ino: n.ino, mode: n.mode, modTime: n.modTime,
		data: content, syncedLen: len(content),
	}
}

// String returns Tree.
func (m *MemFS) String() string { return m.Tree() }

// Tree dumps the directory tree for debugging, one entry per line in name
// order. Files show their size, their synced size and, if they have several
// names, their inode. The mark before a name says what a crash would do to
// the entry:
//
//	' ' durable
//	'+' not yet durable: vanishes (the parent has not been synced since it was created)
//	'-' removed, but the removal is not durable: comes back
//	'~' the name now refers to another inode than the durable one
//
// A file marked "diverged" was truncated or overwritten below its synced
// length since its last Sync.
func (m *MemFS) Tree() string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var b strings.Builder
	b.WriteString("/\n")
	m.root.dump(&b, 1)
	return b.String()
}

func (n *memNode) dump(b *strings.Builder, depth int) {
	names := map[string]bool{}
	for name := range n.children {
		names[name] = true
	}
	for name := range n.syncedChildren {
		names[name] = true
	}
	for _, name := range slices.Sorted(maps.Keys(names)) {
		live, dur := n.children[name], n.syncedChildren[name]
		mark := " "
		switch {
		case live == nil:
			mark = "-"
		case dur == nil:
			mark = "+"
		case live != dur:
			mark = "~"
		}
		show := live
		if show == nil {
			show = dur
		}
		fmt.Fprintf(b, "%s%s%s", strings.Repeat("  ", depth), mark, name)
		if show.isDir {
			b.WriteString("/\n")
			if live != nil {
				show.dump(b, depth+1)
			}
			continue
		}
		fmt.Fprintf(b, " size=%d synced=%d", len(show.data), len(show.durable()))
		if show.diverged {
			b.WriteString(" diverged")
		}
		if show.nlink > 1 {
			fmt.Fprintf(b, " ino=%d nlink=%d", show.ino, show.nlink)
		}
		b.WriteString("\n")
	}
}

// info returns a FileInfo for n under the name base.
func (n *memNode) info(base string) os.FileInfo {
	return &memFileInfo{name: base, size: int64(len(n.data)), mode: n.mode, modTime: n.modTime}
}

type memFileInfo struct {
	name    string
	size    int64
	mode    os.FileMode
	modTime time.Time
}

func (fi *memFileInfo) Name() string       { return fi.name }
func (fi *memFileInfo) Size() int64        { return fi.size }
func (fi *memFileInfo) Mode() os.FileMode  { return fi.mode }
func (fi *memFileInfo) ModTime() time.Time { return fi.modTime }
func (fi *memFileInfo) IsDir() bool        { return fi.mode.IsDir() }
func (fi *memFileInfo) Sys() any           { return nil }

// memFile is an open MemFS file (or directory). All fields but fs, n, name
// and readOnly are guarded by fs.mu.
type memFile struct {
	fs       *MemFS
	n        *memNode
	name     string
	readOnly bool
	off      int64
	closed   bool
}

func (f *memFile) err(op string, err error) error {
	return &os.PathError{Op: op, Path: f.name, Err: err}
}

func (f *memFile) Read(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	switch {
	case f.closed:
		return 0, f.err("read", os.ErrClosed)
	case f.n.isDir:
		return 0, f.err("read", syscall.EISDIR)
	}
	if f.off >= int64(len(f.n.data)) {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	k := copy(p, f.n.data[f.off:])
	f.off += int64(k)
	return k, nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.RLock()
	defer f.fs.mu.RUnlock()
	switch {
	case f.closed:
		return 0, f.err("read", os.ErrClosed)
	case f.n.isDir:
		return 0, f.err("read", syscall.EISDIR)
	case off < 0:
		return 0, f.err("readat", fmt.Errorf("negative offset"))
	}
	if off >= int64(len(f.n.data)) {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	k := copy(p, f.n.data[off:])
	if k < len(p) {
		return k, io.EOF
	}
	return k, nil
}

func (f *memFile) Write(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	switch {
	case f.closed:
		return 0, f.err("write", os.ErrClosed)
	case f.readOnly:
		return 0, f.err("write", syscall.EBADF)
	}
	if err := f.fs.writeAt(f.n, p, f.off); err != nil {
		return 0, f.err("write", err)
	}
	f.off += int64(len(p))
	return len(p), nil
}

func (f *memFile) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return f.err("close", os.ErrClosed)
	}
	f.closed = true
	if !f.n.isDir {
		f.n.opens--
		f.fs.maybeRelease(f.n)
	}
	return nil
}

// Sync makes the file's content durable; on a directory handle it makes the
// directory's entries durable, like SyncDir.
func (f *memFile) Sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return f.err("sync", os.ErrClosed)
	}
	n := f.n
	if n.isDir {
		n.syncedChildren = maps.Clone(n.children)
		f.fs.syncDirs.Add(1)
		return nil
	}
	n.syncedLen = len(n.data)
	n.synced = nil
	n.diverged = false
	f.fs.syncs.Add(1)
	return nil
}

func (f *memFile) Size() (int64, error) {
	f.fs.mu.RLock()
	defer f.fs.mu.RUnlock()
	if f.closed {
		return 0, f.err("stat", os.ErrClosed)
	}
	if f.n.isDir {
		return 0, nil
	}
	return int64(len(f.n.data)), nil
}

// Truncate sets the file's size and, if the offset was past the new end,
// moves it to the new end.
func (f *memFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	switch {
	case f.closed:
		return f.err("truncate", os.ErrClosed)
	case f.readOnly || size < 0:
		return f.err("truncate", syscall.EINVAL)
	}
	if err := f.fs.truncate(f.n, size); err != nil {
		return f.err("truncate", err)
	}
	f.off = min(f.off, size)
	return nil
}
