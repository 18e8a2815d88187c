// Command dbx-bench measures throughput and latency of any RESP server (a
// dbx node or cluster, a plain Redis): see internal/bench for the logic.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/redis/go-redis/v9"
)

// exitError carries an exit status other than 1 out of the command.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// quietLogger drops go-redis's log lines (failed dials, pool events): every
// failure is counted and reported with its message in the result instead.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func main() {
	redis.SetLogger(quietLogger{})
	if err := newRootCmd(os.Stdout, os.Stderr).Execute(); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "dbx-bench:", err)
		os.Exit(1)
	}
}
