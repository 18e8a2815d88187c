//go:build !unix

package vfs

import "os"

// flock is not implemented outside unix; Default.Lock then relies on the
// in-process set of held paths only.
func flock(*os.File) error { return nil }
