package vfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"
)

// newSyncedDir returns a MemFS with the durable directory /db.
func newSyncedDir(t *testing.T) *MemFS {
	t.Helper()
	m := NewMem()
	if err := m.MkdirAll("/db", 0o755); err != nil {
		t.Fatal(err)
	}
	mustSyncDir(t, m, "/")
	return m
}

// content returns the content of name in fs, or "<missing>".
func content(t *testing.T, fs FS, name string) string {
	t.Helper()
	if _, err := fs.Stat(name); errors.Is(err, os.ErrNotExist) {
		return "<missing>"
	}
	return readAll(t, fs, name)
}

func TestMemCrashUnsyncedDataLost(t *testing.T) {
	m := newSyncedDir(t)
	f := mustCreate(t, m, "/db/wal")
	mustSyncDir(t, m, "/db")
	mustWrite(t, f, "abc")
	mustSync(t, f)
	mustWrite(t, f, "def")
	c := m.CrashClone(CrashOptions{})
	if got := content(t, c, "/db/wal"); got != "abc" {
		t.Fatalf("after crash: %q, want \"abc\"", got)
	}
	if got := content(t, m, "/db/wal"); got != "abcdef" {
		t.Fatalf("original: %q, want \"abcdef\"", got)
	}
}

func TestMemCrashSyncedKept(t *testing.T) {
	m := newSyncedDir(t)
	f := mustCreate(t, m, "/db/wal")
	mustWrite(t, f, "abc")
	mustWrite(t, f, "def")
	mustSync(t, f)
	mustClose(t, f)
	mustSyncDir(t, m, "/db")
	c := m.CrashClone(CrashOptions{})
	if got := content(t, c, "/db/wal"); got != "abcdef" {
		t.Fatalf("after crash: %q, want \"abcdef\"", got)
	}
	// Everything in a clone is durable: a second crash keeps it all.
	if got := content(t, c.CrashClone(CrashOptions{}), "/db/wal"); got != "abcdef" {
		t.Fatalf("after second crash: %q, want \"abcdef\"", got)
	}
}

func TestMemCrashUnsyncedCreateLost(t *testing.T) {
	m := newSyncedDir(t)
	f := mustCreate(t, m, "/db/seg")
	mustWrite(t, f, "data")
	mustSync(t, f) // data synced, but the entry is not
	mustClose(t, f)
	if err := m.MkdirAll("/db/sub", 0o755); err != nil {
		t.Fatal(err)
	}
	c := m.CrashClone(CrashOptions{})
	if got := content(t, c, "/db/seg"); got != "<missing>" {
		t.Fatalf("file with unsynced entry after crash: %q, want missing", got)
	}
	if names, err := c.List("/db"); err != nil || len(names) != 0 {
		t.Fatalf("List(/db) after crash = %q, %v; want empty", names, err)
	}
	// A directory needs its parent synced too.
	m2 := NewMem()
	if err := m2.MkdirAll("/a/b", 0o755); err != nil {
		t.Fatal(err)
	}
	mustSyncDir(t, m2, "/a") // b is durable in a, but a is not durable in /
	if _, err := m2.CrashClone(CrashOptions{}).Stat("/a"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Stat(/a) after crash = %v, want ErrNotExist", err)
	}
}

func TestMemCrashRemoveRolledBack(t *testing.T) {
	m := newSyncedDir(t)
	f := mustCreate(t, m, "/db/old")
	mustWrite(t, f, "synced")
	mustSync(t, f)
	mustWrite(t, f, "+unsynced")
	mustClose(t, f)
	mustSyncDir(t, m, "/db")
	if err := m.Remove("/db/old"); err != nil {
		t.Fatal(err)
	}
	if got := content(t, m.CrashClone(CrashOptions{}), "/db/old"); got != "synced" {
		t.Fatalf("removed file without SyncDir after crash: %q, want \"synced\"", got)
	}
	mustSyncDir(t, m, "/db")
	if got := content(t, m.CrashClone(CrashOptions{}), "/db/old"); got != "<missing>" {
		t.Fatalf("removed file with SyncDir after crash: %q, want missing", got)
	}
}

func TestMemCrashRenameRolledBack(t *testing.T) {
	m := newSyncedDir(t)
	writeSynced(t, m, "/db/CURRENT", "v1")
	writeSynced(t, m, "/db/CURRENT.tmp", "v2")
	mustSyncDir(t, m, "/db")
	if err := m.Rename("/db/CURRENT.tmp", "/db/CURRENT"); err != nil {
		t.Fatal(err)
	}
	c := m.CrashClone(CrashOptions{})
	if got := content(t, c, "/db/CURRENT"); got != "v1" {
		t.Fatalf("CURRENT after crash without SyncDir: %q, want \"v1\"", got)
	}
	if got := content(t, c, "/db/CURRENT.tmp"); got != "v2" {
		t.Fatalf("CURRENT.tmp after crash without SyncDir: %q, want \"v2\"", got)
	}
	mustSyncDir(t, m, "/db")
	c = m.CrashClone(CrashOptions{})
	if got := content(t, c, "/db/CURRENT"); got != "v2" {
		t.Fatalf("CURRENT after crash with SyncDir: %q, want \"v2\"", got)
	}
	if got := content(t, c, "/db/CURRENT.tmp"); got != "<missing>" {
		t.Fatalf("CURRENT.tmp after crash with SyncDir: %q, want missing", got)
	}
}

func TestMemCrashLinkSurvivesAfterSyncDir(t *testing.T) {
	m := newSyncedDir(t)
	writeSynced(t, m, "/db/a", "shared")
	mustSyncDir(t, m, "/db")
	if err := m.Link("/db/a", "/db/b"); err != nil {
		t.Fatal(err)
	}
	if got := content(t, m.CrashClone(CrashOptions{}), "/db/b"); got != "<missing>" {
		t.Fatalf("link without SyncDir after crash: %q, want missing", got)
	}
	mustSyncDir(t, m, "/db")
	if err := m.Remove("/db/a"); err != nil { // not synced: a comes back
		t.Fatal(err)
	}
	c := m.CrashClone(CrashOptions{})
	if got := content(t, c, "/db/b"); got != "shared" {
		t.Fatalf("link after crash: %q, want \"shared\"", got)
	}
	// The two names still share one inode in the clone.
	f, err := c.OpenReadWrite("/db/b")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, "!")
	mustClose(t, f)
	if got := content(t, c, "/db/a"); got != "shared!" {
		t.Fatalf("write through one link not seen through the other: %q, want \"shared!\"", got)
	}
	if c.Used() != int64(len("shared!")) {
		t.Fatalf("clone Used = %d, want %d (one inode)", c.Used(), len("shared!"))
	}
}

func TestMemCrashTruncateNotSynced(t *testing.T) {
	m := newSyncedDir(t)
	f := mustCreate(t, m, "/db/wal")
	mustSyncDir(t, m, "/db")
	mustWrite(t, f, "hello world")
	mustSync(t, f)
	if err := f.Truncate(5); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, "XYZ")
	// The synced bytes were cut and rewritten: a crash restores them exactly,
	// even when tearing.
	for seed := range uint64(20) {
		c := m.CrashClone(CrashOptions{TearUnsynced: true, GarbageTail: true, Seed: seed})
		if got := content(t, c, "/db/wal"); got != "hello world" {
			t.Fatalf("seed %d: after crash: %q, want \"hello world\"", seed, got)
		}
	}
	mustSync(t, f)
	if got := content(t, m.CrashClone(CrashOptions{}), "/db/wal"); got != "helloXYZ" {
		t.Fatalf("after Sync and crash: %q, want \"helloXYZ\"", got)
	}
	// Create on an existing file truncates it; unsynced, the old content returns.
	mustClose(t, f)
	writeFile(t, m, "/db/wal", "new")
	if got := content(t, m.CrashClone(CrashOptions{}), "/db/wal"); got != "helloXYZ" {
		t.Fatalf("after unsynced re-Create and crash: %q, want \"helloXYZ\"", got)
	}
	if got := content(t, m, "/db/wal"); got != "new" {
		t.Fatalf("original after re-Create: %q, want \"new\"", got)
	}
}

func TestMemCrashOverwriteBelowSynced(t *testing.T) {
	m := newSyncedDir(t)
	writeSynced(t, m, "/db/f", "0123456789")
	mustSyncDir(t, m, "/db")
	f, err := m.Open("/db/f")
	if err != nil {
		t.Fatal(err)
	}
	mustClose(t, f)
	rw, err := m.OpenReadWrite("/db/f")
	if err != nil {
		t.Fatal(err)
	}
	if err := rw.Truncate(4); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, rw, "abcdefghij")
	mustClose(t, rw)
	if got := content(t, m, "/db/f"); got != "0123abcdefghij" {
		t.Fatalf("original: %q", got)
	}
	if got := content(t, m.CrashClone(CrashOptions{}), "/db/f"); got != "0123456789" {
		t.Fatalf("after crash: %q, want \"0123456789\"", got)
	}
}

func TestMemCrashTearUnsynced(t *testing.T) {
	const synced, unsynced = "0123", "456789abcdef"
	m := newSyncedDir(t)
	f := mustCreate(t, m, "/db/wal")
	mustSyncDir(t, m, "/db")
	mustWrite(t, f, synced)
	mustSync(t, f)
	mustWrite(t, f, unsynced)
	full := synced + unsynced

	lengths := map[int]bool{}
	for seed := range uint64(200) {
		got := content(t, m.CrashClone(CrashOptions{TearUnsynced: true, Seed: seed}), "/db/wal")
		if len(got) < len(synced) || got != full[:len(got)] {
			t.Fatalf("seed %d: torn content %q is not a prefix of %q at least %d long", seed, got, full, len(synced))
		}
		lengths[len(got)] = true
		again := content(t, m.CrashClone(CrashOptions{TearUnsynced: true, Seed: seed}), "/db/wal")
		if again != got {
			t.Fatalf("seed %d: not deterministic: %q then %q", seed, got, again)
		}
	}
	if !lengths[len(synced)] || !lengths[len(full)] || len(lengths) < 8 {
		t.Fatalf("torn lengths seen %v: want the synced length, the full length and most in between", lengths)
	}
	// An explicit Rand is used as given.
	got := content(t, m.CrashClone(CrashOptions{TearUnsynced: true, Rand: rand.New(rand.NewPCG(1, 2))}), "/db/wal")
	if got != full[:len(got)] {
		t.Fatalf("with Rand: %q is not a prefix of %q", got, full)
	}
	// Without TearUnsynced nothing unsynced survives.
	if got := content(t, m.CrashClone(CrashOptions{Seed: 3}), "/db/wal"); got != synced {
		t.Fatalf("without tearing: %q, want %q", got, synced)
	}
}

func TestMemCrashGarbageTail(t *testing.T) {
	synced := "0123"
	unsynced := string(bytes.Repeat([]byte("u"), 40))
	m := newSyncedDir(t)
	f := mustCreate(t, m, "/db/wal")
	mustSyncDir(t, m, "/db")
	mustWrite(t, f, synced)
	mustSync(t, f)
	mustWrite(t, f, unsynced)

	garbled := 0
	for seed := range uint64(100) {
		got := content(t, m.CrashClone(CrashOptions{TearUnsynced: true, GarbageTail: true, Seed: seed}), "/db/wal")
		if len(got) < len(synced) || len(got) > len(synced)+len(unsynced) {
			t.Fatalf("seed %d: length %d out of [%d, %d]", seed, len(got), len(synced), len(synced)+len(unsynced))
		}
		if got[:len(synced)] != synced {
			t.Fatalf("seed %d: synced bytes changed: %q", seed, got[:len(synced)])
		}
		// Only the last 16 bytes may differ from the written ones.
		kept := got[len(synced):]
		clean := max(0, len(kept)-16)
		if kept[:clean] != unsynced[:clean] {
			t.Fatalf("seed %d: bytes before the torn tail changed: %q", seed, kept)
		}
		if kept != unsynced[:len(kept)] {
			garbled++
		}
	}
	if garbled < 50 {
		t.Fatalf("only %d of 100 clones have a garbled tail", garbled)
	}
}

func TestMemCrashCloneIndependent(t *testing.T) {
	m := newSyncedDir(t)
	writeSynced(t, m, "/db/f", "orig")
	mustSyncDir(t, m, "/db")
	c := m.CrashClone(CrashOptions{})

	// Change the clone: the original is untouched.
	f, err := c.OpenReadWrite("/db/f")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, "-clone")
	mustSync(t, f)
	mustClose(t, f)
	writeFile(t, c, "/db/new", "x")
	if got := content(t, m, "/db/f"); got != "orig" {
		t.Fatalf("original changed by the clone: %q", got)
	}
	if got := content(t, m, "/db/new"); got != "<missing>" {
		t.Fatalf("file created in the clone appears in the original: %q", got)
	}

	// Change the original: the clone is untouched.
	g, err := m.OpenReadWrite("/db/f")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, g, "-orig")
	mustSync(t, g)
	mustClose(t, g)
	if err := m.Remove("/db/f"); err != nil {
		t.Fatal(err)
	}
	mustSyncDir(t, m, "/db")
	if got := content(t, c, "/db/f"); got != "orig-clone" {
		t.Fatalf("clone changed by the original: %q", got)
	}
	if c.SyncCount() != 1 || c.SyncDirCount() != 0 {
		t.Fatalf("clone counters = %d syncs, %d syncdirs; want 1, 0", c.SyncCount(), c.SyncDirCount())
	}
}

func TestMemCrashOpenFilesAndLocks(t *testing.T) {
	m := newSyncedDir(t)
	l, err := m.Lock("/db/LOCK")
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, l)
	mustSyncDir(t, m, "/db")
	c := m.CrashClone(CrashOptions{})
	l2, err := c.Lock("/db/LOCK")
	if err != nil {
		t.Fatalf("lock held across a crash: %v", err)
	}
	mustClose(t, l2)
	if _, err := m.Lock("/db/LOCK"); !errors.Is(err, ErrLocked) {
		t.Fatalf("original lock released by the clone: %v", err)
	}
}

func TestMemCapacity(t *testing.T) {
	m := NewMem()
	m.SetCapacity(10)
	f := mustCreate(t, m, "/f")
	mustWrite(t, f, "12345678")
	n, err := f.Write([]byte("abc"))
	if n != 0 || !errors.Is(err, ErrNoSpace) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Write over capacity = %d, %v; want 0, ErrNoSpace and ENOSPC", n, err)
	}
	var pe *os.PathError
	if !errors.As(err, &pe) || pe.Path != "/f" {
		t.Fatalf("Write over capacity error %v does not name /f", err)
	}
	checkSize(t, f, 8)
	if err := f.Truncate(11); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Truncate over capacity = %v, want ErrNoSpace", err)
	}
	mustWrite(t, f, "90") // exactly at capacity
	if m.Used() != 10 {
		t.Fatalf("Used = %d, want 10", m.Used())
	}
	if err := f.Truncate(4); err != nil {
		t.Fatal(err)
	}
	if m.Used() != 4 {
		t.Fatalf("Used after Truncate = %d, want 4", m.Used())
	}
	mustClose(t, f)

	// A link costs nothing; a removed file holds space until its last handle closes.
	if err := m.Link("/f", "/g"); err != nil {
		t.Fatal(err)
	}
	r, err := m.Open("/f")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"/f", "/g"} {
		if err := m.Remove(name); err != nil {
			t.Fatal(err)
		}
	}
	if m.Used() != 4 {
		t.Fatalf("Used with a removed file still open = %d, want 4", m.Used())
	}
	mustClose(t, r)
	if m.Used() != 0 {
		t.Fatalf("Used after the last close = %d, want 0", m.Used())
	}
	writeFile(t, m, "/h", "0123456789")
	if got := content(t, m, "/h"); got != "0123456789" {
		t.Fatalf("content = %q", got)
	}
	m.SetCapacity(0)
	writeFile(t, m, "/i", "unlimited now")
	if m.Used() != 23 {
		t.Fatalf("Used = %d, want 23", m.Used())
	}
	if err := m.RemoveAll("/"); err == nil {
		t.Fatal("RemoveAll(/) succeeded")
	}
}

func TestMemSyncCount(t *testing.T) {
	m := NewMem()
	f := mustCreate(t, m, "/wal")
	for range 3 {
		mustWrite(t, f, "x")
		mustSync(t, f)
	}
	mustSyncDir(t, m, "/")
	if m.SyncCount() != 3 || m.SyncDirCount() != 1 {
		t.Fatalf("counts = %d syncs, %d syncdirs; want 3, 1", m.SyncCount(), m.SyncDirCount())
	}
	// Sync on a directory handle is a SyncDir.
	d, err := m.Open("/")
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, d)
	mustClose(t, d)
	if m.SyncCount() != 3 || m.SyncDirCount() != 2 {
		t.Fatalf("counts = %d syncs, %d syncdirs; want 3, 2", m.SyncCount(), m.SyncDirCount())
	}
}

func TestMemTree(t *testing.T) {
	m := newSyncedDir(t)
	writeSynced(t, m, "/db/a", "aaaa")
	writeSynced(t, m, "/db/gone", "g")
	mustSyncDir(t, m, "/db")
	if err := m.Link("/db/a", "/db/b"); err != nil {
		t.Fatal(err)
	}
	f, err := m.OpenReadWrite("/db/a")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, "++")
	mustClose(t, f)
	if err := m.Remove("/db/gone"); err != nil {
		t.Fatal(err)
	}
	if err := m.MkdirAll("/tmp", 0o755); err != nil {
		t.Fatal(err)
	}
	want := "/\n" +
		"   db/\n" +
		"     a size=6 synced=4 ino=3 nlink=2\n" +
		"    +b size=6 synced=4 ino=3 nlink=2\n" +
		"    -gone size=1 synced=1\n" +
		"  +tmp/\n"
	if got := m.String(); got != want {
		t.Fatalf("Tree:\n%s\nwant:\n%s", got, want)
	}
}

func TestMemPaths(t *testing.T) {
	m := NewMem()
	if err := m.MkdirAll("a/b", 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, m, "/a/b/../b/f", "x")
	for _, name := range []string{"a/b/f", "/a/b/f", "a//b/./f"} {
		if got := content(t, m, name); got != "x" {
			t.Fatalf("%s: %q, want \"x\"", name, got)
		}
	}
	if _, err := m.Create("/a/b/f/g"); !errors.Is(err, syscall.ENOTDIR) {
		t.Fatalf("Create under a file = %v, want ENOTDIR", err)
	}
	if _, err := m.Create("/a"); !errors.Is(err, syscall.EISDIR) {
		t.Fatalf("Create of a directory = %v, want EISDIR", err)
	}
	if err := m.Link("/a", "/c"); err == nil {
		t.Fatal("Link of a directory succeeded")
	}
	fi, err := m.Stat("/")
	if err != nil || !fi.IsDir() {
		t.Fatalf("Stat(/) = %v, %v", fi, err)
	}
}

// TestMemConcurrent runs writers, readers and crash clones at once; run with
// -race.
func TestMemConcurrent(t *testing.T) {
	m := newSyncedDir(t)
	const writers, records = 4, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("/db/w%d", w)
			f, err := m.Create(name)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			for i := range records {
				if _, err := f.Write([]byte{byte(i)}); err != nil {
					t.Error(err)
					return
				}
				if i%5 == 4 {
					if err := f.Sync(); err != nil {
						t.Error(err)
						return
					}
					if err := m.SyncDir("/db"); err != nil {
						t.Error(err)
						return
					}
				}
				b := make([]byte, 1)
				if _, err := f.ReadAt(b, int64(i)); err != nil || b[0] != byte(i) {
					t.Errorf("%s: ReadAt(%d) = %v, %v", name, i, b, err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for seed := range uint64(20) {
			c := m.CrashClone(CrashOptions{TearUnsynced: true, Seed: seed})
			names, err := c.List("/db")
			if err != nil {
				t.Error(err)
				return
			}
			for _, name := range names {
				f, err := c.Open("/db/" + name)
				if err != nil {
					t.Error(err)
					return
				}
				b, err := io.ReadAll(f)
				f.Close()
				if err != nil {
					t.Error(err)
					return
				}
				for i, x := range b {
					if x != byte(i) {
						t.Errorf("clone %d: %s[%d] = %d", seed, name, i, x)
						return
					}
				}
			}
		}
	}()
	wg.Wait()
	c := m.CrashClone(CrashOptions{})
	names, err := c.List("/db")
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != writers || !slices.IsSorted(names) {
		t.Fatalf("names after crash = %q, want %d sorted", names, writers)
	}
	for _, name := range names {
		if got := content(t, c, "/db/"+name); len(got) != records {
			t.Fatalf("%s after crash has %d bytes, want %d", name, len(got), records)
		}
	}
}

// writeSynced creates name with content s and syncs the file (not the
// directory).
func writeSynced(t *testing.T, fs FS, name, s string) {
	t.Helper()
	f := mustCreate(t, fs, name)
	mustWrite(t, f, s)
	mustSync(t, f)
	mustClose(t, f)
}
