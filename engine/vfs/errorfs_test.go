package vfs

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// workload writes three synced records to /db/wal and publishes them with
// SyncDir, as a WAL would. It returns the first error.
func workload(fs FS) error {
	if err := fs.MkdirAll("/db", 0o755); err != nil {
		return err
	}
	if err := fs.SyncDir("/"); err != nil {
		return err
	}
	f, err := fs.Create("/db/wal")
	if err != nil {
		return err
	}
	defer f.Close()
	if err := fs.SyncDir("/db"); err != nil {
		return err
	}
	for _, rec := range []string{"r1;", "r2;", "r3;"} {
		if _, err := f.Write([]byte(rec)); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
	}
	return nil
}

func TestOnIndexEveryOp(t *testing.T) {
	count := OnIndex(-1)
	if err := workload(WithErrors(NewMem(), count)); err != nil {
		t.Fatal(err)
	}
	// mkdir, syncdir, create, syncdir, 3 x (write, sync)
	if count.Count() != 10 {
		t.Fatalf("counted %d ops, want 10", count.Count())
	}
	wantOp := []Op{OpMkdir, OpSyncDir, OpCreate, OpSyncDir, OpWrite, OpSync, OpWrite, OpSync, OpWrite, OpSync}
	for i := range count.Count() {
		m := NewMem()
		inj := OnIndex(i)
		err := workload(WithErrors(m, inj))
		if !errors.Is(err, ErrInjected) || !inj.Fired() {
			t.Fatalf("index %d: err = %v, fired = %v; want ErrInjected", i, err, inj.Fired())
		}
		var ie *InjectedError
		if !errors.As(err, &ie) || ie.Op != wantOp[i] {
			t.Fatalf("index %d: error %v, want an InjectedError for %s", i, err, wantOp[i])
		}
		if !strings.Contains(err.Error(), wantOp[i].String()) {
			t.Fatalf("index %d: error %q does not name the op %s", i, err, wantOp[i])
		}
		if i != 1 && !strings.Contains(err.Error(), "/db") {
			t.Fatalf("index %d: error %q does not name the file", i, err)
		}
		// The failed op did nothing: only completed records are there, and
		// only synced ones survive a crash.
		written := max(0, int(i-3)/2) // records whose write completed
		synced := max(0, int(i-4)/2)  // records whose sync completed
		want := strings.Repeat("r?;", written)
		if got := content(t, m, "/db/wal"); i >= 3 && !sameRecords(got, want) {
			t.Fatalf("index %d: content %q, want %d records", i, got, written)
		}
		crashed := content(t, m.CrashClone(CrashOptions{}), "/db/wal")
		switch {
		case i < 4: // the file's entry is not durable yet
			if crashed != "<missing>" {
				t.Fatalf("index %d: after crash %q, want missing", i, crashed)
			}
		case !sameRecords(crashed, strings.Repeat("r?;", synced)):
			t.Fatalf("index %d: after crash %q, want %d records", i, crashed, synced)
		}
	}
}

// sameRecords compares got with a pattern where '?' stands for the record
// number 1, 2, 3...
func sameRecords(got, pattern string) bool {
	var want strings.Builder
	for i := range len(pattern) / 3 {
		fmt.Fprintf(&want, "r%d;", i+1)
	}
	return got == want.String()
}

func TestOnIndexFilter(t *testing.T) {
	m := NewMem()
	inj := OnIndex(1, OpSync)
	err := workload(WithErrors(m, inj))
	if !errors.Is(err, ErrInjected) || !strings.Contains(err.Error(), "sync /db/wal") {
		t.Fatalf("err = %v, want injected sync of /db/wal", err)
	}
	if inj.Count() != 2 {
		t.Fatalf("Count = %d, want 2 (stopped at the failed second sync)", inj.Count())
	}
	if got := content(t, m, "/db/wal"); got != "r1;r2;" {
		t.Fatalf("content = %q, want \"r1;r2;\"", got)
	}
	if got := content(t, m.CrashClone(CrashOptions{}), "/db/wal"); got != "r1;" {
		t.Fatalf("after crash = %q, want \"r1;\"", got)
	}
	if m.SyncCount() != 1 {
		t.Fatalf("SyncCount = %d, want 1: the failed sync must not reach MemFS", m.SyncCount())
	}
}

func TestOnIndexFiresOnce(t *testing.T) {
	inj := OnIndex(0, OpWrite)
	fs := WithErrors(NewMem(), inj)
	f := mustCreate(t, fs, "/f")
	if _, err := f.Write([]byte("a")); !errors.Is(err, ErrInjected) {
		t.Fatalf("first write = %v, want ErrInjected", err)
	}
	mustWrite(t, f, "b")
	mustClose(t, f)
	if got := readAll(t, fs, "/f"); got != "b" {
		t.Fatalf("content = %q, want \"b\" (failed write writes nothing)", got)
	}
}

func TestRandomInjector(t *testing.T) {
	run := func(rate float64, seed int64) (string, int64) {
		inj := Random(rate, seed, OpWrite)
		fs := WithErrors(NewMem(), inj)
		f := mustCreate(t, fs, "/f")
		var trace strings.Builder
		for range 200 {
			if _, err := f.Write([]byte("x")); err != nil {
				if !errors.Is(err, ErrInjected) {
					t.Fatalf("unexpected error %v", err)
				}
				trace.WriteByte('E')
			} else {
				trace.WriteByte('.')
			}
		}
		if sz, _ := f.Size(); sz != int64(strings.Count(trace.String(), ".")) {
			t.Fatalf("size %d does not match %d successful writes", sz, strings.Count(trace.String(), "."))
		}
		mustClose(t, f)
		return trace.String(), inj.Injected()
	}
	if tr, n := run(0, 1); n != 0 || strings.Contains(tr, "E") {
		t.Fatalf("rate 0 injected %d errors", n)
	}
	if tr, n := run(1, 1); n != 200 || strings.Contains(tr, ".") {
		t.Fatalf("rate 1 injected %d of 200", n)
	}
	a, n := run(0.3, 42)
	if n < 30 || n > 90 {
		t.Fatalf("rate 0.3 injected %d of 200", n)
	}
	if b, _ := run(0.3, 42); a != b {
		t.Fatalf("same seed, different decisions:\n%s\n%s", a, b)
	}
	if c, _ := run(0.3, 43); a == c {
		t.Fatal("different seeds, same decisions")
	}
	// Ops outside the filter are never failed.
	inj := Random(1, 1, OpSync)
	if err := workload(WithErrors(NewMem(), inj)); !errors.Is(err, ErrInjected) || !strings.Contains(err.Error(), "sync") {
		t.Fatalf("err = %v, want injected sync", err)
	}
}

func TestInjectorFunc(t *testing.T) {
	boom := errors.New("boom")
	inj := InjectorFunc(func(op Op, name string) error {
		if op == OpRename && strings.HasSuffix(name, ".tmp") {
			return boom
		}
		return nil
	})
	m := NewMem()
	fs := WithErrors(m, inj)
	writeFile(t, fs, "/CURRENT.tmp", "v2")
	if err := fs.Rename("/CURRENT.tmp", "/CURRENT"); err != boom {
		t.Fatalf("Rename = %v, want the injector's error as is", err)
	}
	if got := content(t, m, "/CURRENT"); got != "<missing>" {
		t.Fatalf("failed rename happened: %q", got)
	}
	if err := fs.Link("/CURRENT.tmp", "/x"); err != nil {
		t.Fatalf("Link = %v", err)
	}
}

func TestErrorFSAllOps(t *testing.T) {
	// Every FS and File method consults the injector with the right op.
	var seen []string
	inj := InjectorFunc(func(op Op, name string) error {
		seen = append(seen, op.String())
		return nil
	})
	fs := WithErrors(NewMem(), inj)
	if err := fs.MkdirAll("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	f, _ := fs.Create("/d/f")
	_, _ = f.Write([]byte("abc"))
	_ = f.Sync()
	_, _ = f.Size()
	_ = f.Truncate(2)
	_, _ = f.ReadAt(make([]byte, 1), 0)
	_ = f.Close()
	g, _ := fs.OpenReadWrite("/d/f")
	_, _ = g.Read(make([]byte, 1))
	_ = g.Close()
	g, _ = fs.Open("/d/f")
	_ = g.Close()
	_, _ = fs.Stat("/d/f")
	_, _ = fs.List("/d")
	_ = fs.SyncDir("/d")
	_ = fs.Link("/d/f", "/d/g")
	_ = fs.Rename("/d/g", "/d/h")
	_ = fs.Remove("/d/h")
	l, _ := fs.Lock("/d/LOCK")
	_ = l.Close()
	_ = fs.RemoveAll("/d")
	got := strings.Join(seen, " ")
	want := "mkdir create write sync stat truncate readat open read open stat list syncdir link rename remove lock remove"
	if got != want {
		t.Fatalf("ops:\n got %s\nwant %s", got, want)
	}
	if Op(99).String() != "Op(99)" {
		t.Fatalf("Op(99) = %s", Op(99))
	}
}
