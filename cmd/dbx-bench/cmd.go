package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/dbx-kv/dbx/internal/bench"
	"github.com/spf13/cobra"
)

// Exit statuses besides 0 (success) and 1 (bad flags, unreachable server).
const (
	exitOpErrors    = 3   // the run completed but some operations failed
	exitInterrupted = 130 // Ctrl-C: partial results were printed
)

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	cfg := bench.DefaultConfig()
	var (
		addrs        string
		jsonOut      bool
		progress     bool
		noProgress   bool
		workloadHelp = strings.Join(bench.Workloads, "|")
	)
	cmd := &cobra.Command{
		Use:   "dbx-bench --addrs H:P,... [--workload NAME] [--clients N] [--requests N | --duration D] [--json]",
		Short: "Benchmark a dbx cluster or any RESP server (Redis included)",
		Long: `dbx-bench runs a closed-loop workload against RESP servers and prints
throughput and p50/p90/p99/p99.9/max latency (HDR histogram, 1µs-60s).

Without --cluster, clients are spread over --addrs round-robin; with --cluster
they route by CLUSTER SLOTS like a cluster-aware client. Exit status: 0 ok,
1 bad flags or unreachable address, 3 some operations failed, 130 interrupted.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if addrs != "" {
				cfg.Addrs = strings.Split(addrs, ",")
			}
			f := cmd.Flags()
			if f.Changed("duration") && !f.Changed("requests") {
				cfg.Requests = 0 // --duration alone: bounded by time only
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			var pw io.Writer
			if (progress || isTerminal(os.Stderr)) && !noProgress {
				pw = stderr
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			res, err := bench.Run(ctx, cfg, pw)
			if res == nil {
				return err
			}
			if jsonOut {
				if werr := res.WriteJSON(stdout); werr != nil {
					return werr
				}
			} else if werr := res.WriteText(stdout); werr != nil {
				return werr
			}
			switch {
			case errors.Is(err, bench.ErrInterrupted):
				fmt.Fprintln(stderr, "dbx-bench: interrupted, results are partial")
				return exitError{exitInterrupted}
			case err != nil:
				return err
			case res.Errors > 0 || res.LoadErrors > 0:
				return exitError{exitOpErrors}
			}
			return nil
		},
	}
	cmd.SetContext(context.Background())
	f := cmd.Flags()
	f.StringVar(&addrs, "addrs", "", "comma-separated RESP addresses host:port (required)")
	f.BoolVar(&cfg.Cluster, "cluster", false, "route by CLUSTER SLOTS like a cluster-aware client (go-redis ClusterClient)")
	f.StringVar(&cfg.Password, "password", "", "AUTH password (user default); also $DBX_BENCH_PASSWORD")
	f.StringVar(&cfg.Workload, "workload", cfg.Workload, workloadHelp)
	f.IntVar(&cfg.Clients, "clients", cfg.Clients, "concurrent clients, one connection each")
	f.Int64Var(&cfg.Requests, "requests", cfg.Requests, "measured operations (0: bounded by --duration only)")
	f.DurationVar(&cfg.Duration, "duration", 0, "measured phase length (with --requests: whichever ends first)")
	f.DurationVar(&cfg.Warmup, "warmup", 0, "unrecorded run before measuring")
	f.BoolVar(&cfg.Load, "load", false, "SET every key once before warmup")
	f.Int64Var(&cfg.Keys, "keys", cfg.Keys, "key space key:0 … key:N-1")
	f.StringVar(&cfg.Distribution, "distribution", cfg.Distribution, "key distribution: uniform|zipfian (θ=0.99)")
	f.IntVar(&cfg.ValueBytes, "value-bytes", cfg.ValueBytes, "bytes per value written")
	f.IntVar(&cfg.Pipeline, "pipeline", cfg.Pipeline, "operations per round trip")
	f.IntVar(&cfg.MSetKeys, "mset-keys", cfg.MSetKeys, "keys per MSET (workload mset)")
	f.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed for key and operation choice")
	f.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "dial (at most 2s), read and write timeout")
	f.BoolVar(&jsonOut, "json", false, "print the result as JSON")
	f.BoolVar(&progress, "progress", false, "print a status line per second on stderr even when it is not a terminal")
	f.BoolVar(&noProgress, "no-progress", false, "never print status lines")
	if p := os.Getenv("DBX_BENCH_PASSWORD"); p != "" {
		cfg.Password = p
	}
	return cmd
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
