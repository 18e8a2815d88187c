// Command dbx-node runs a dbx node (serve) and operates a cluster through
// any node's admin API (status, drain, reweight).
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "dbx-node:", err)
		os.Exit(1)
	}
}
