// Command dbx-node runs a dbx node (serve) and operates a cluster through
// any node's admin API (status, drain, reweight, limits, snapshot);
// dbx-node version (or --version) prints the build.
package main

import (
	"errors"
	"fmt"
	"os"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code) // the cause is logged already
		}
		fmt.Fprintln(os.Stderr, "dbx-node:", err)
		os.Exit(1)
	}
}
