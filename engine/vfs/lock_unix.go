//go:build unix

package vfs

import (
	"os"
	"syscall"
)

// flock takes an exclusive, non-blocking flock(2) lock on f. flock locks
// belong to the open file description, so two opens of the same file conflict
// even within one process.
func flock(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		ferr = syscall.Flock(int(fd), syscall.LOCK_EX|syscall.LOCK_NB)
	}); err != nil {
		return err
	}
	return ferr
}
