// Command etcdbench runs dbx-bench's workloads against etcd through its Go
// client (go.etcd.io/etcd/client/v3) and prints the same result, text or
// --json, so that `dbx-bench --compare` can put etcd next to dbx and Redis.
// The phases, histograms, progress lines, Ctrl-C handling and exit statuses
// are dbx-bench's own (internal/bench.RunTarget); only the operations are
// etcd's:
//
//	GET      Get (linearizable; --serializable for a local read)
//	SET      Put
//	ycsb-f   Get, then Put of the same key
//	txn      one Txn whose Then holds --txn-keys Puts (mset: --mset-keys)
//
// Every worker sends one request at a time (etcd has no pipelining); the
// workers share --conns client connections (default: one per worker, as
// dbx-bench opens one TCP connection per worker). Run it as
//
//	cd bench && go run ./etcdbench --endpoints 127.0.0.1:2379 --workload set --duration 10s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/dbx-kv/dbx/internal/bench"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Exit statuses, as dbx-bench's: 0 ok, 1 bad flags or unreachable, 3 some
// operations failed, 130 interrupted (partial results printed).
const (
	exitOpErrors    = 3
	exitInterrupted = 130
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// options are the flags that are not bench.Config fields.
type options struct {
	endpoints    string
	conns        int
	serializable bool
	jsonOut      bool
	progress     bool
	noProgress   bool
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, opt, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "etcdbench:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C exits at once
	}()

	t, err := dial(ctx, &cfg, opt)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "etcdbench: interrupted before the first phase: no results")
			return exitInterrupted
		}
		fmt.Fprintln(stderr, "etcdbench:", err)
		return 1
	}
	defer t.close()
	var pw io.Writer
	if (opt.progress || isTerminal(os.Stderr)) && !opt.noProgress {
		pw = stderr
	}
	res, err := bench.RunTarget(ctx, cfg, t, pw)
	if res == nil {
		fmt.Fprintln(stderr, "etcdbench:", err)
		return 1
	}
	if opt.jsonOut {
		err2 := res.WriteJSON(stdout)
		if err2 != nil {
			fmt.Fprintln(stderr, "etcdbench:", err2)
			return 1
		}
	} else if err2 := res.WriteText(stdout); err2 != nil {
		fmt.Fprintln(stderr, "etcdbench:", err2)
		return 1
	}
	switch {
	case errors.Is(err, bench.ErrInterrupted):
		fmt.Fprintln(stderr, "etcdbench: interrupted, results are partial")
		return exitInterrupted
	case err != nil:
		fmt.Fprintln(stderr, "etcdbench:", err)
		return 1
	case res.Errors > 0 || res.LoadErrors > 0:
		return exitOpErrors
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (bench.Config, options, error) {
	cfg := bench.DefaultConfig()
	var opt options
	fs := flag.NewFlagSet("etcdbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&opt.endpoints, "endpoints", "", "comma-separated etcd client addresses host:port (required)")
	fs.IntVar(&opt.conns, "conns", 0, "client connections shared by the workers (0: one per worker)")
	fs.BoolVar(&opt.serializable, "serializable", false, "serializable (local, possibly stale) reads instead of linearizable ones")
	fs.StringVar(&cfg.Workload, "workload", cfg.Workload, "set|get|mixed|ycsb-a|ycsb-b|ycsb-c|ycsb-f|mset|txn")
	fs.StringVar(&cfg.Mix, "mix", "", "workload mixed: A, B, C or F (default A)")
	fs.IntVar(&cfg.TxnKeys, "txn-keys", cfg.TxnKeys, "Puts per Txn (workload txn)")
	fs.IntVar(&cfg.MSetKeys, "mset-keys", cfg.MSetKeys, "Puts per Txn (workload mset)")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "concurrent workers, one request in flight each")
	fs.Int64Var(&cfg.Requests, "requests", cfg.Requests, "measured operations (0: bounded by --duration only)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "measured phase length (with --requests: whichever ends first)")
	fs.DurationVar(&cfg.Warmup, "warmup", 0, "unrecorded run before measuring")
	fs.BoolVar(&cfg.Load, "load", false, "Put every key once before warmup")
	fs.Int64Var(&cfg.Keys, "keys", cfg.Keys, "key space key:0 … key:N-1")
	fs.StringVar(&cfg.Distribution, "distribution", cfg.Distribution, "key distribution: uniform|zipfian (θ=0.99)")
	fs.IntVar(&cfg.ValueBytes, "value-bytes", cfg.ValueBytes, "bytes per value written")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed for key and operation choice")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "dial (at most 2s) and per-request timeout")
	fs.StringVar(&cfg.Label, "label", "", "name of this run in the report, the JSON and dbx-bench --compare")
	fs.BoolVar(&opt.jsonOut, "json", false, "print the result as JSON")
	fs.BoolVar(&opt.progress, "progress", false, "print a status line per second on stderr even when it is not a terminal")
	fs.BoolVar(&opt.noProgress, "no-progress", false, "never print status lines")
	if err := fs.Parse(args); err != nil {
		return cfg, opt, err
	}
	if fs.NArg() > 0 {
		return cfg, opt, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["duration"] && !set["requests"] {
		cfg.Requests = 0 // --duration alone: bounded by time only
	}
	if opt.endpoints != "" {
		cfg.Addrs = strings.Split(opt.endpoints, ",")
	}
	var errs []error
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if opt.conns < 0 {
		errs = append(errs, fmt.Errorf("%w: conns (%d) must not be negative", bench.ErrInvalidConfig, opt.conns))
	}
	return cfg, opt, errors.Join(errs...)
}

// target is the etcd Target: clients shared round-robin by the workers.
type target struct {
	clients      []*clientv3.Client
	timeout      time.Duration
	serializable bool
}

// dial checks that every endpoint accepts TCP and answers Status, then
// opens the clients.
func dial(ctx context.Context, cfg *bench.Config, opt options) (*target, error) {
	dialTimeout := min(cfg.Timeout, 2*time.Second)
	if err := bench.CheckReachable(ctx, cfg.Addrs, dialTimeout); err != nil {
		return nil, err
	}
	n := opt.conns
	if n == 0 {
		n = cfg.Clients
	}
	t := &target{timeout: cfg.Timeout, serializable: opt.serializable}
	for range min(n, cfg.Clients) {
		c, err := clientv3.New(clientv3.Config{
			Endpoints:   cfg.Addrs,
			DialTimeout: dialTimeout,
			Logger:      zap.NewNop(),
		})
		if err != nil {
			t.close()
			return nil, fmt.Errorf("etcd client for %s: %w", strings.Join(cfg.Addrs, ","), err)
		}
		t.clients = append(t.clients, c)
	}
	for _, ep := range cfg.Addrs {
		sctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		_, err := t.clients[0].Status(sctx, ep)
		cancel()
		if err != nil {
			t.close()
			return nil, fmt.Errorf("etcd Status on %s: %w (is it an etcd client address?)", ep, err)
		}
	}
	return t, nil
}

func (t *target) close() {
	for _, c := range t.clients {
		c.Close()
	}
}

func (t *target) Name() string { return "etcd" }

func (t *target) Conn(worker int) (bench.Conn, error) {
	c := &conn{kv: t.clients[worker%len(t.clients)], timeout: t.timeout}
	if t.serializable {
		c.getOpts = []clientv3.OpOption{clientv3.WithSerializable()}
	}
	return c, nil
}

// conn is one worker's: requests one at a time, each bounded by timeout.
type conn struct {
	kv      clientv3.KV
	timeout time.Duration
	getOpts []clientv3.OpOption
	puts    []clientv3.Op
}

func (c *conn) Do(ctx context.Context, batch []bench.Op, errs []error) {
	for i, o := range batch {
		if ctx.Err() != nil {
			return
		}
		errs[i] = c.do(ctx, o)
	}
}

func (c *conn) do(ctx context.Context, o bench.Op) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	switch o.Kind {
	case bench.OpGet:
		_, err := c.kv.Get(ctx, o.Keys[0], c.getOpts...)
		return err
	case bench.OpSet:
		_, err := c.kv.Put(ctx, o.Keys[0], string(o.Value))
		return err
	case bench.OpRMW:
		if _, err := c.kv.Get(ctx, o.Keys[0], c.getOpts...); err != nil {
			return err
		}
		_, err := c.kv.Put(ctx, o.Keys[0], string(o.Value))
		return err
	case bench.OpMSet, bench.OpTxn:
		c.puts = c.puts[:0]
		v := string(o.Value)
		for _, k := range o.Keys {
			c.puts = append(c.puts, clientv3.OpPut(k, v))
		}
		resp, err := c.kv.Txn(ctx).Then(c.puts...).Commit()
		if err != nil {
			return err
		}
		if !resp.Succeeded {
			return errors.New("etcd Txn without conditions did not succeed")
		}
		return nil
	}
	return fmt.Errorf("operation kind %d not supported by etcdbench", o.Kind)
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
