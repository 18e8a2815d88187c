//go:build linux

package vfs

import (
	"os"
	"syscall"
)

// datasync makes f's data (and the metadata needed to read it, such as its
// size) durable: fdatasync(2), which skips the timestamp update fsync pays for.
func datasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			if err != nil {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}
