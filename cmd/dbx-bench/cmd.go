package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
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
		compare      bool
		useTLS       bool
		caFile       string
		serverName   string
		workloadHelp = strings.Join(bench.Workloads, "|")
	)
	cmd := &cobra.Command{
		Use: "dbx-bench --addrs H:P,... [--workload NAME] [--clients N] [--requests N | --duration D] [--json] [--label NAME]\n" +
			"  dbx-bench --compare FILE.json FILE.json ...",
		Short: "Benchmark a dbx cluster or any RESP server (Redis included)",
		Long: `dbx-bench runs a closed-loop workload against RESP servers and prints
throughput and p50/p90/p99/p99.9/max latency (HDR histogram, 1µs-60s).

Without --cluster, clients are spread over --addrs round-robin; with --cluster
they route by CLUSTER SLOTS like a cluster-aware client. Workload txn sends
MULTI, --txn-keys SETs and EXEC per operation; --cross-node / --same-node
pick keys owned by different nodes / one node (by CLUSTER SLOTS).

--compare reads results saved with --json and prints them side by side,
with throughput and p99 as ratios to the first file.

Exit status: 0 ok, 1 bad flags, unreachable address or a server that lacks
what the workload needs, 3 some operations failed, 130 interrupted (partial
results printed; a second Ctrl-C exits at once).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args: func(_ *cobra.Command, args []string) error {
			switch {
			case compare && len(args) == 0:
				return errors.New("--compare needs at least one result file (saved with --json)")
			case !compare && len(args) > 0:
				return fmt.Errorf("unexpected argument %q (result files go with --compare)", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if compare {
				return runCompare(stdout, args)
			}
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
			if useTLS || caFile != "" {
				tc, err := benchTLS(caFile, serverName)
				if err != nil {
					return err
				}
				cfg.TLS = tc
			}
			var pw io.Writer
			if (progress || isTerminal(os.Stderr)) && !noProgress {
				pw = stderr
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			go func() {
				<-ctx.Done()
				stop() // a second Ctrl-C gets the default action: exit now
			}()
			res, err := bench.Run(ctx, cfg, pw)
			if res == nil {
				if errors.Is(err, bench.ErrInterrupted) {
					fmt.Fprintln(stderr, "dbx-bench: interrupted before the first phase: no results")
					return exitError{exitInterrupted}
				}
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
	f.BoolVar(&useTLS, "tls", false, "speak TLS (verified against the system roots, or --cacert)")
	f.StringVar(&caFile, "cacert", "", "PEM CA bundle to verify the servers' certificates with (implies --tls)")
	f.StringVar(&serverName, "tls-server-name", "", "host name the certificates must name (default: the address's host)")
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
	f.StringVar(&cfg.Mix, "mix", "", "workload mixed: A (50% GET/50% SET), B (95/5), C (GET only), F (50% GET/50% GET+SET); default A")
	f.IntVar(&cfg.TxnKeys, "txn-keys", cfg.TxnKeys, "keys per transaction (workload txn: MULTI, N SETs, EXEC)")
	f.BoolVar(&cfg.CrossNode, "cross-node", false, "workload txn: every transaction writes keys owned by different nodes (needs a cluster of 2+ nodes)")
	f.BoolVar(&cfg.SameNode, "same-node", false, "workload txn: every transaction writes keys owned by one node")
	f.StringVar(&cfg.Label, "label", "", "name of this run in the report, the JSON and --compare")
	f.BoolVar(&compare, "compare", false, "print the result files given as arguments (from --json) side by side")
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

// runCompare reads every file and prints them side by side; a run without
// a label is named by its file name.
func runCompare(stdout io.Writer, files []string) error {
	names := make([]string, len(files))
	results := make([]*bench.Result, len(files))
	for i, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		res, err := bench.ReadResult(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		names[i] = strings.TrimSuffix(filepath.Base(name), ".json")
		results[i] = res
	}
	return bench.WriteComparison(stdout, names, results)
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// benchTLS is the client TLS configuration of --tls/--cacert.
func benchTLS(caFile, serverName string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("--cacert: %s holds no PEM certificate", caFile)
		}
	}
	return tc, nil
}
