// Command enginebench runs the same workloads on dbx's storage engine and on
// Pebble, with equal durability and equal memory budgets, and prints the
// medians of several runs side by side with the ratio dbx/pebble.
//
// Workloads:
//
//	write  concurrent synced writes of random keys (fsync per commit group)
//	read   random point reads of a loaded, flushed key set
//	scan   one full ordered scan of the loaded key set
//	rss    resident memory per million loaded keys, and the peak
//
// Every (engine, workload group, run) is a child process of its own in a
// fresh directory; see child.go. Run it as
//
//	cd bench && go run ./enginebench [flags]
//
// and see README.md for how to read the output.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// options are the command-line flags; children get the parent's flags.
type options struct {
	engines           []string
	workloads         []string
	runs              int
	writes            int
	writers           int
	keys              int
	reads             int
	readers           int
	keyBytes          int
	valueBytes        int
	memtableMiB       int
	cacheMiB          int
	loadBatch         int
	loadWorkers       int
	settle            time.Duration
	compact           bool
	pebbleCompression string
	dir               string
	seed              uint64
	keep              bool
	cpuProfile        string
	memProfile        string
	jsonOut           bool
	jsonFile          string
	child             string // internal: run one child (engine/group/run)
	flags             map[string]string
}

func (o *options) has(workload string) bool { return slices.Contains(o.workloads, workload) }

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("enginebench", flag.ContinueOnError)
	engines := fs.String("engines", "dbx,pebble", "engines to run, comma-separated (dbx, pebble)")
	workloads := fs.String("workloads", "write,read,scan", "workloads, comma-separated (write, read, scan); read and scan load the key set, which also measures RSS")
	fs.IntVar(&o.runs, "runs", 3, "runs of every workload per engine; the report shows the median")
	fs.IntVar(&o.writes, "writes", 200_000, "write: total synced writes")
	fs.IntVar(&o.writers, "writers", 64, "write: concurrent writers")
	fs.IntVar(&o.keys, "keys", 1_000_000, "read/scan/rss: keys loaded")
	fs.IntVar(&o.reads, "reads", 1_000_000, "read: total point reads")
	fs.IntVar(&o.readers, "readers", 4, "read: concurrent readers")
	fs.IntVar(&o.keyBytes, "key-bytes", 16, "key size in bytes (the stored key has 2 more: the bucket)")
	fs.IntVar(&o.valueBytes, "value-bytes", 100, "value size in bytes")
	fs.IntVar(&o.memtableMiB, "memtable-mib", 64, "memtable size, MiB (dbx MemtableBytes, per shard; pebble MemTableSize)")
	fs.IntVar(&o.cacheMiB, "cache-mib", 64, "block cache, MiB (dbx BlockCacheBytes; pebble NewCache)")
	fs.IntVar(&o.loadBatch, "load-batch", 1000, "load: operations per unsynced batch")
	fs.IntVar(&o.loadWorkers, "load-workers", runtime.GOMAXPROCS(0), "load: concurrent loaders")
	fs.DurationVar(&o.settle, "settle", 60*time.Second, "after the load's flush, wait at most this long for flushes and compactions to go idle (0: don't wait)")
	fs.BoolVar(&o.compact, "compact", false, "after the load's flush, compact fully (dbx Compact, pebble Compact over the key space)")
	fs.StringVar(&o.pebbleCompression, "pebble-compression", "none", "pebble block compression: none (as dbx, whose segments are uncompressed) or snappy (pebble's default)")
	fs.StringVar(&o.dir, "dir", os.TempDir(), "parent of the engines' fresh temporary directories")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of keys and values (same for both engines)")
	fs.BoolVar(&o.keep, "keep", false, "keep the engines' directories")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "directory for CPU profiles, one per engine, workload and run (<engine>-<workload>-run<N>.cpu.pprof)")
	fs.StringVar(&o.memProfile, "memprofile", "", "directory for heap profiles taken after the load (<engine>-afterload-run<N>.heap.pprof)")
	fs.BoolVar(&o.jsonOut, "json", false, "print the report as JSON on stdout instead of the table")
	fs.StringVar(&o.jsonFile, "json-file", "", "also write the JSON report to this file")
	fs.StringVar(&o.child, "child", "", "internal: run one engine/group/run and report on fd 3")
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "usage: go run ./enginebench [flags]\n\n")
		fmt.Fprintf(out, "Runs the same workloads on dbx's engine and on Pebble and prints medians and dbx/pebble ratios.\n\n")
		fs.VisitAll(func(f *flag.Flag) {
			if f.Name == "child" {
				return
			}
			fmt.Fprintf(out, "  -%s (default %q)\n    \t%s\n", f.Name, f.DefValue, f.Usage)
		})
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o.flags = map[string]string{}
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name != "child" {
			o.flags[f.Name] = f.Value.String()
		}
	})
	o.engines = splitList(*engines)
	o.workloads = splitList(*workloads)
	return o, o.validate()
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// validate reports every problem at once.
func (o *options) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(o.engines) == 0 {
		bad("-engines is empty")
	}
	for _, e := range o.engines {
		if e != "dbx" && e != "pebble" {
			bad("-engines: unknown engine %q (want dbx, pebble)", e)
		}
	}
	if len(o.workloads) == 0 {
		bad("-workloads is empty")
	}
	for _, w := range o.workloads {
		if w != "write" && w != "read" && w != "scan" {
			bad("-workloads: unknown workload %q (want write, read, scan)", w)
		}
	}
	positive := func(name string, v int) {
		if v < 1 {
			bad("-%s (%d) must be at least 1", name, v)
		}
	}
	positive("runs", o.runs)
	positive("writes", o.writes)
	positive("writers", o.writers)
	positive("keys", o.keys)
	positive("reads", o.reads)
	positive("readers", o.readers)
	positive("key-bytes", o.keyBytes)
	positive("value-bytes", o.valueBytes)
	positive("memtable-mib", o.memtableMiB)
	positive("cache-mib", o.cacheMiB)
	positive("load-batch", o.loadBatch)
	positive("load-workers", o.loadWorkers)
	if o.valueBytes > 1<<20 {
		bad("-value-bytes (%d) must be at most %d", o.valueBytes, 1<<20)
	}
	if o.settle < 0 {
		bad("-settle (%s) must not be negative", o.settle)
	}
	if o.pebbleCompression != "none" && o.pebbleCompression != "snappy" {
		bad("-pebble-compression %q: want none or snappy", o.pebbleCompression)
	}
	if st, err := os.Stat(o.dir); err != nil || !st.IsDir() {
		bad("-dir %q is not a directory", o.dir)
	}
	for _, d := range []struct{ flag, dir string }{{"cpuprofile", o.cpuProfile}, {"memprofile", o.memProfile}} {
		if d.dir == "" {
			continue
		}
		if st, err := os.Stat(d.dir); err != nil || !st.IsDir() {
			bad("-%s %q is not a directory", d.flag, d.dir)
		}
	}
	return errors.Join(errs...)
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "enginebench:", err)
		os.Exit(2)
	}
	if o.child != "" {
		os.Exit(childMain(o))
	}
	if err := parentMain(o); err != nil {
		fmt.Fprintln(os.Stderr, "enginebench:", err)
		os.Exit(1)
	}
}
