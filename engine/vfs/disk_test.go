//go:build unix

package vfs

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestFlockConflictsWithinProcess checks the assumption behind Default.Lock:
// flock(2) locks belong to the open file description, so two opens of the
// same file in one process conflict.
func TestFlockConflictsWithinProcess(t *testing.T) {
	name := filepath.Join(t.TempDir(), "LOCK")
	a, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := flock(a); err != nil {
		t.Fatalf("first flock: %v", err)
	}
	if err := flock(b); !errors.Is(err, syscall.EWOULDBLOCK) {
		t.Fatalf("second flock in the same process = %v, want EWOULDBLOCK", err)
	}
	a.Close()
	if err := flock(b); err != nil {
		t.Fatalf("flock after the holder closed: %v", err)
	}
}

const lockHelperEnv = "DBX_VFS_LOCK_HELPER"

// TestDiskLockOtherProcess holds a lock and checks that a child process (this
// test binary, running TestDiskLockHelper) cannot take it.
func TestDiskLockOtherProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	name := filepath.Join(t.TempDir(), "LOCK")
	l, err := Default.Lock(name)
	if err != nil {
		t.Fatal(err)
	}
	child := func() string {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDiskLockHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), lockHelperEnv+"="+name)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helper: %v\n%s", err, out)
		}
		return string(out)
	}
	if out := child(); !strings.Contains(out, "LOCKED") {
		t.Fatalf("child took a lock held by the parent:\n%s", out)
	}
	mustClose(t, l)
	if out := child(); !strings.Contains(out, "ACQUIRED") {
		t.Fatalf("child could not take a released lock:\n%s", out)
	}
}

// TestDiskLockHelper is the child side of TestDiskLockOtherProcess.
func TestDiskLockHelper(t *testing.T) {
	name := os.Getenv(lockHelperEnv)
	if name == "" {
		t.Skip("helper process only")
	}
	l, err := Default.Lock(name)
	switch {
	case errors.Is(err, ErrLocked):
		println("LOCKED")
	case err == nil:
		println("ACQUIRED")
		l.Close()
	default:
		t.Fatal(err)
	}
}

// TestDiskNoSpace writes to /dev/full, which fails every write with ENOSPC.
func TestDiskNoSpace(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	f, err := Default.OpenReadWrite("/dev/full")
	if err != nil {
		t.Skipf("open /dev/full: %v", err)
	}
	defer f.Close()
	_, err = f.Write([]byte("x"))
	if !errors.Is(err, syscall.ENOSPC) || !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Write to /dev/full = %v, want ENOSPC and ErrNoSpace", err)
	}
	if !strings.Contains(err.Error(), "/dev/full") {
		t.Fatalf("error %q does not name the file", err)
	}
	var pe *os.PathError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v is not an *os.PathError", err)
	}
}

func TestDiskSyncDirAndList(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"b", "a"} {
		writeFile(t, Default, filepath.Join(dir, n), n)
	}
	mustSyncDir(t, Default, dir)
	names, err := Default.List(dir)
	if err != nil || strings.Join(names, ",") != "a,b" {
		t.Fatalf("List = %q, %v; want [a b]", names, err)
	}
	if _, err := Default.List(filepath.Join(dir, "a")); err == nil {
		t.Fatal("List of a file succeeded")
	}
}
