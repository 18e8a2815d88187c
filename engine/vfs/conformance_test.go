package vfs

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// The conformance suite: testFS runs the same checks against every FS
// implementation, so MemFS (and ErrorFS with no faults) behave like the disk.

func TestConformanceDisk(t *testing.T) { testFS(t, Default, t.TempDir()) }

func TestConformanceMem(t *testing.T) { testFS(t, NewMem(), "/data") }

func TestConformanceMemRelative(t *testing.T) { testFS(t, NewMem(), "data/x") }

func TestConformanceErrorFSNoFaults(t *testing.T) {
	inj := OnIndex(-1)
	testFS(t, WithErrors(NewMem(), inj), "/data")
	if inj.Count() == 0 || inj.Fired() {
		t.Fatalf("injector saw %d ops, fired=%v; want >0 ops, not fired", inj.Count(), inj.Fired())
	}
}

// testFS checks the behaviour every FS must share. root is a directory that
// may not exist yet; testFS creates it.
func testFS(t *testing.T, fs FS, root string) {
	if err := fs.MkdirAll(root, 0o755); err != nil {
		t.Fatalf("MkdirAll(%s): %v", root, err)
	}
	p := func(name string) string { return filepath.Join(root, name) }

	t.Run("CreateWriteRead", func(t *testing.T) {
		name := p("cwr")
		f := mustCreate(t, fs, name)
		mustWrite(t, f, "hello")
		mustWrite(t, f, " world")
		checkSize(t, f, 11)
		if err := f.Sync(); err != nil {
			t.Fatalf("Sync: %v", err)
		}
		mustClose(t, f)
		if got := readAll(t, fs, name); got != "hello world" {
			t.Fatalf("content = %q, want %q", got, "hello world")
		}
		fi, err := fs.Stat(name)
		if err != nil {
			t.Fatalf("Stat: %v", err)
		}
		if fi.Name() != "cwr" || fi.Size() != 11 || fi.IsDir() {
			t.Fatalf("Stat = name %q size %d dir %v, want cwr 11 false", fi.Name(), fi.Size(), fi.IsDir())
		}
	})

	t.Run("ReadAt", func(t *testing.T) {
		name := p("readat")
		writeFile(t, fs, name, "0123456789")
		f, err := fs.Open(name)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer mustClose(t, f)
		buf := make([]byte, 4)
		if n, err := f.ReadAt(buf, 3); n != 4 || err != nil || string(buf) != "3456" {
			t.Fatalf("ReadAt(4@3) = %d %q %v, want 4 \"3456\" nil", n, buf[:n], err)
		}
		if n, err := f.ReadAt(buf, 8); n != 2 || err != io.EOF || string(buf[:n]) != "89" {
			t.Fatalf("ReadAt(4@8) = %d %q %v, want 2 \"89\" EOF", n, buf[:n], err)
		}
		if n, err := f.ReadAt(buf, 10); n != 0 || err != io.EOF {
			t.Fatalf("ReadAt(4@10) = %d %v, want 0 EOF", n, err)
		}
		if _, err := f.ReadAt(buf, -1); err == nil {
			t.Fatal("ReadAt at a negative offset succeeded")
		}
		// ReadAt does not move the offset used by Read.
		if n, err := f.Read(buf); n != 4 || err != nil || string(buf) != "0123" {
			t.Fatalf("Read = %d %q %v, want 4 \"0123\" nil", n, buf[:n], err)
		}
		// Concurrent ReadAt (run with -race).
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b := make([]byte, 1)
				off := int64(i)
				if _, err := f.ReadAt(b, off); err != nil || b[0] != byte('0'+i) {
					errs <- errors.New("concurrent ReadAt returned wrong data")
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	})

	t.Run("ReadOnly", func(t *testing.T) {
		name := p("ro")
		writeFile(t, fs, name, "abc")
		f, err := fs.Open(name)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if _, err := f.Write([]byte("x")); err == nil {
			t.Fatal("Write on a read-only file succeeded")
		}
		if err := f.Truncate(0); err == nil {
			t.Fatal("Truncate on a read-only file succeeded")
		}
		mustClose(t, f)
		if err := f.Close(); !errors.Is(err, os.ErrClosed) {
			t.Fatalf("second Close = %v, want os.ErrClosed", err)
		}
		if got := readAll(t, fs, name); got != "abc" {
			t.Fatalf("content = %q, want \"abc\"", got)
		}
	})

	t.Run("NotExist", func(t *testing.T) {
		if _, err := fs.Open(p("missing")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Open(missing) = %v, want ErrNotExist", err)
		}
		if _, err := fs.OpenReadWrite(p("missing")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("OpenReadWrite(missing) = %v, want ErrNotExist", err)
		}
		if _, err := fs.Create(p("nodir/f")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Create(nodir/f) = %v, want ErrNotExist", err)
		}
		if _, err := fs.Stat(p("missing")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Stat(missing) = %v, want ErrNotExist", err)
		}
		if err := fs.Remove(p("missing")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Remove(missing) = %v, want ErrNotExist", err)
		}
		if err := fs.Rename(p("missing"), p("x")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Rename(missing) = %v, want ErrNotExist", err)
		}
		if _, err := fs.List(p("missing")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("List(missing) = %v, want ErrNotExist", err)
		}
		if err := fs.SyncDir(p("missing")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("SyncDir(missing) = %v, want ErrNotExist", err)
		}
		if err := fs.RemoveAll(p("missing")); err != nil {
			t.Fatalf("RemoveAll(missing) = %v, want nil", err)
		}
	})

	t.Run("OpenReadWriteAppends", func(t *testing.T) {
		name := p("orw")
		writeFile(t, fs, name, "hello")
		f, err := fs.OpenReadWrite(name)
		if err != nil {
			t.Fatalf("OpenReadWrite: %v", err)
		}
		mustWrite(t, f, " world")
		checkSize(t, f, 11)
		mustClose(t, f)
		if got := readAll(t, fs, name); got != "hello world" {
			t.Fatalf("content = %q, want \"hello world\"", got)
		}
	})

	t.Run("CreateTruncatesExisting", func(t *testing.T) {
		name := p("trunc-existing")
		writeFile(t, fs, name, "long old content")
		writeFile(t, fs, name, "new")
		if got := readAll(t, fs, name); got != "new" {
			t.Fatalf("content = %q, want \"new\"", got)
		}
	})

	t.Run("Truncate", func(t *testing.T) {
		name := p("truncate")
		f := mustCreate(t, fs, name)
		mustWrite(t, f, "hello world")
		if err := f.Truncate(5); err != nil {
			t.Fatalf("Truncate(5): %v", err)
		}
		checkSize(t, f, 5)
		// The offset moved back to the new end: no hole.
		mustWrite(t, f, "!")
		if err := f.Truncate(8); err != nil {
			t.Fatalf("Truncate(8): %v", err)
		}
		mustClose(t, f)
		if got := readAll(t, fs, name); got != "hello!\x00\x00" {
			t.Fatalf("content = %q, want \"hello!\\x00\\x00\"", got)
		}
	})

	t.Run("Rename", func(t *testing.T) {
		a, b, c := p("ren-a"), p("ren-b"), p("ren-c")
		writeFile(t, fs, a, "A")
		if err := fs.Rename(a, b); err != nil {
			t.Fatalf("Rename: %v", err)
		}
		if _, err := fs.Stat(a); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Stat(old) = %v, want ErrNotExist", err)
		}
		if got := readAll(t, fs, b); got != "A" {
			t.Fatalf("content = %q, want \"A\"", got)
		}
		// Rename replaces an existing file.
		writeFile(t, fs, c, "C")
		if err := fs.Rename(c, b); err != nil {
			t.Fatalf("Rename onto existing: %v", err)
		}
		if got := readAll(t, fs, b); got != "C" {
			t.Fatalf("content after replace = %q, want \"C\"", got)
		}
		// Rename of a directory.
		if err := fs.MkdirAll(p("rdir/sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, fs, p("rdir/sub/f"), "F")
		if err := fs.Rename(p("rdir/sub"), p("rdir/sub2")); err != nil {
			t.Fatalf("Rename dir: %v", err)
		}
		if got := readAll(t, fs, p("rdir/sub2/f")); got != "F" {
			t.Fatalf("content in renamed dir = %q, want \"F\"", got)
		}
		if err := fs.Rename(p("rdir"), p("rdir/sub2/x")); err == nil {
			t.Fatal("Rename of a directory into itself succeeded")
		}
	})

	t.Run("Link", func(t *testing.T) {
		a, b := p("link-a"), p("link-b")
		writeFile(t, fs, a, "one")
		if err := fs.Link(a, b); err != nil {
			t.Fatalf("Link: %v", err)
		}
		if err := fs.Link(a, b); !errors.Is(err, os.ErrExist) {
			t.Fatalf("Link onto existing = %v, want ErrExist", err)
		}
		// Both names share the content.
		f, err := fs.OpenReadWrite(b)
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, f, "+two")
		mustClose(t, f)
		if got := readAll(t, fs, a); got != "one+two" {
			t.Fatalf("content via first name = %q, want \"one+two\"", got)
		}
		if err := fs.Remove(a); err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, fs, b); got != "one+two" {
			t.Fatalf("content via link after removing first name = %q, want \"one+two\"", got)
		}
	})

	t.Run("RemovedButOpen", func(t *testing.T) {
		name := p("rmopen")
		writeFile(t, fs, name, "still here")
		f, err := fs.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		defer mustClose(t, f)
		if err := fs.Remove(name); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		if _, err := fs.Stat(name); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Stat(removed) = %v, want ErrNotExist", err)
		}
		buf := make([]byte, 5)
		if n, err := f.ReadAt(buf, 6); n != 4 || string(buf[:n]) != "here" || err != io.EOF {
			t.Fatalf("ReadAt on removed file = %d %q %v, want 4 \"here\" EOF", n, buf[:n], err)
		}
		got, err := io.ReadAll(f)
		if err != nil || string(got) != "still here" {
			t.Fatalf("Read on removed file = %q %v, want \"still here\"", got, err)
		}
		checkSize(t, f, 10)
	})

	t.Run("ListAndDirs", func(t *testing.T) {
		d := p("list")
		if err := fs.MkdirAll(filepath.Join(d, "z", "deep"), 0o755); err != nil {
			t.Fatalf("MkdirAll: %v", err)
		}
		if err := fs.MkdirAll(filepath.Join(d, "z", "deep"), 0o755); err != nil {
			t.Fatalf("MkdirAll of an existing dir: %v", err)
		}
		for _, n := range []string{"c", "a", "b"} {
			writeFile(t, fs, filepath.Join(d, n), n)
		}
		names, err := fs.List(d)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if want := []string{"a", "b", "c", "z"}; !slices.Equal(names, want) {
			t.Fatalf("List = %q, want %q", names, want)
		}
		fi, err := fs.Stat(filepath.Join(d, "z"))
		if err != nil || !fi.IsDir() {
			t.Fatalf("Stat(dir) = %v, %v; want a directory", fi, err)
		}
		if err := fs.MkdirAll(filepath.Join(d, "a", "sub"), 0o755); err == nil {
			t.Fatal("MkdirAll under a file succeeded")
		}
		if err := fs.Remove(filepath.Join(d, "z")); err == nil {
			t.Fatal("Remove of a non-empty directory succeeded")
		}
		if err := fs.SyncDir(d); err != nil {
			t.Fatalf("SyncDir: %v", err)
		}
		if err := fs.RemoveAll(d); err != nil {
			t.Fatalf("RemoveAll: %v", err)
		}
		if _, err := fs.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Stat after RemoveAll = %v, want ErrNotExist", err)
		}
	})

	t.Run("Lock", func(t *testing.T) {
		name := p("LOCK")
		l, err := fs.Lock(name)
		if err != nil {
			t.Fatalf("Lock: %v", err)
		}
		_, err = fs.Lock(name)
		if !errors.Is(err, ErrLocked) {
			t.Fatalf("second Lock = %v, want ErrLocked", err)
		}
		if !strings.Contains(err.Error(), name) {
			t.Fatalf("second Lock error %q does not name %s", err, name)
		}
		if _, err := fs.Stat(name); err != nil {
			t.Fatalf("lock file not created: %v", err)
		}
		if err := l.Close(); err != nil {
			t.Fatalf("unlock: %v", err)
		}
		if err := l.Close(); err == nil {
			t.Fatal("second unlock succeeded")
		}
		l2, err := fs.Lock(name)
		if err != nil {
			t.Fatalf("Lock after unlock: %v", err)
		}
		if err := l2.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

func mustCreate(t *testing.T, fs FS, name string) File {
	t.Helper()
	f, err := fs.Create(name)
	if err != nil {
		t.Fatalf("Create(%s): %v", name, err)
	}
	return f
}

func mustWrite(t *testing.T, f File, s string) {
	t.Helper()
	if n, err := f.Write([]byte(s)); n != len(s) || err != nil {
		t.Fatalf("Write(%q) = %d, %v", s, n, err)
	}
}

func mustClose(t *testing.T, f io.Closer) {
	t.Helper()
	if err := f.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func mustSync(t *testing.T, f File) {
	t.Helper()
	if err := f.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

func mustSyncDir(t *testing.T, fs FS, dir string) {
	t.Helper()
	if err := fs.SyncDir(dir); err != nil {
		t.Fatalf("SyncDir(%s): %v", dir, err)
	}
}

func checkSize(t *testing.T, f File, want int64) {
	t.Helper()
	if got, err := f.Size(); got != want || err != nil {
		t.Fatalf("Size = %d, %v; want %d", got, err, want)
	}
}

// writeFile creates name with content s (not synced).
func writeFile(t *testing.T, fs FS, name, s string) {
	t.Helper()
	f := mustCreate(t, fs, name)
	mustWrite(t, f, s)
	mustClose(t, f)
}

func readAll(t *testing.T, fs FS, name string) string {
	t.Helper()
	f, err := fs.Open(name)
	if err != nil {
		t.Fatalf("Open(%s): %v", name, err)
	}
	defer mustClose(t, f)
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("ReadAll(%s): %v", name, err)
	}
	return string(b)
}
