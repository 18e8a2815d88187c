package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Each (engine, group, run) runs in a child process of its own (the binary
// re-executed with -child engine/group/run), so one engine's heap, caches
// and background goroutines never share a process with the other's, and
// VmRSS/VmHWM describe one engine only. Groups:
//
//	write: a fresh store, the synced concurrent write workload.
//	data:  a fresh store, the unsynced load (RSS measured after it), then
//	       the point-read workload and the full scan.
//
// The child writes one childResult as JSON to file descriptor 3.

type childResult struct {
	Engine string         `json:"engine"`
	Group  string         `json:"group"`
	Run    int            `json:"run"`
	Dir    string         `json:"dir"`
	Write  *writeResult   `json:"write,omitempty"`
	Load   *loadResult    `json:"load,omitempty"`
	Read   *readResult    `json:"read,omitempty"`
	Scan   *scanResult    `json:"scan,omitempty"`
	Shape  map[string]any `json:"shape,omitempty"` // on-disk layout / write-path statistics at the end
	Err    string         `json:"error,omitempty"`
}

// latency is in microseconds.
type latency struct {
	P50  float64 `json:"p50_us"`
	P99  float64 `json:"p99_us"`
	P999 float64 `json:"p999_us"`
	Max  float64 `json:"max_us"`
}

type writeResult struct {
	Ops       int     `json:"ops"`
	Writers   int     `json:"writers"`
	Seconds   float64 `json:"seconds"`
	OpsPerSec float64 `json:"ops_per_sec"`
	Latency   latency `json:"latency"`
}

type loadResult struct {
	Keys          int     `json:"keys"`
	LoadSeconds   float64 `json:"load_seconds"`
	KeysPerSec    float64 `json:"load_keys_per_sec"` // load only, before the flush
	FlushSeconds  float64 `json:"flush_seconds"`
	CompactSecs   float64 `json:"compact_seconds,omitempty"`
	SettleSeconds float64 `json:"settle_seconds"`
	Settled       bool    `json:"settled"` // background work went idle within -settle
	// Memory, bytes. Base is after Open; Unflushed right after the last
	// batch (memtables full); After once flushed and settled; Peak is VmHWM
	// from Open until After.
	RSSBase       int64   `json:"rss_base_bytes"`
	RSSUnflushed  int64   `json:"rss_unflushed_bytes"`
	RSSAfter      int64   `json:"rss_after_bytes"`
	RSSPeak       int64   `json:"rss_peak_bytes"`
	PeakFromOpen  bool    `json:"peak_from_open"` // false if VmHWM could not be reset (peak then includes process start)
	RSSPerMillion float64 `json:"rss_delta_per_million_keys_bytes"`
	GoHeapInuse   uint64  `json:"go_heap_inuse_bytes"` // at the After point
	GoHeapSys     uint64  `json:"go_heap_sys_bytes"`
	RSSAfterReads int64   `json:"rss_after_reads_bytes,omitempty"`
}

type readResult struct {
	Ops       int     `json:"ops"`
	Readers   int     `json:"readers"`
	Seconds   float64 `json:"seconds"`
	OpsPerSec float64 `json:"ops_per_sec"`
	Latency   latency `json:"latency"`
}

type scanResult struct {
	Keys       int     `json:"keys"`
	Seconds    float64 `json:"seconds"`
	KeysPerSec float64 `json:"keys_per_sec"`
	// Digest is the CRC-32C of every (bucket||key) in scan order: equal
	// digests mean both engines returned the same keys in the same order.
	Digest string `json:"digest"`
}

func parseChildSpec(spec string) (engineName, group string, run int, err error) {
	f := strings.Split(spec, "/")
	if len(f) == 3 {
		run, err = strconv.Atoi(f[2])
		if err == nil && (f[1] == "write" || f[1] == "data") {
			return f[0], f[1], run, nil
		}
	}
	return "", "", 0, fmt.Errorf("bad -child %q (want engine/write|data/run)", spec)
}

// childMain runs one child and reports on fd 3; it returns the process exit code.
func childMain(o *options) int {
	out := os.NewFile(3, "result")
	if out == nil {
		fmt.Fprintln(os.Stderr, "enginebench: -child is internal (run without it)")
		return 2
	}
	res := runChild(o)
	if err := json.NewEncoder(out).Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, "enginebench: child:", err)
		return 1
	}
	if res.Err != "" {
		return 1
	}
	return 0
}

func runChild(o *options) *childResult {
	name, group, run, err := parseChildSpec(o.child)
	if err != nil {
		return &childResult{Err: err.Error()}
	}
	res := &childResult{Engine: name, Group: group, Run: run}
	dir, err := os.MkdirTemp(o.dir, "enginebench-"+name+"-"+group+"-*")
	if err != nil {
		res.Err = err.Error()
		return res
	}
	res.Dir = dir
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	ctx := context.Background()
	switch group {
	case "write":
		err = runWriteGroup(ctx, o, res)
	case "data":
		err = runDataGroup(ctx, o, res)
	}
	if err != nil {
		res.Err = err.Error()
	}
	return res
}

func (o *options) storeConfig(durable bool) storeConfig {
	return storeConfig{
		durable:       durable,
		memtableBytes: int64(o.memtableMiB) << 20,
		cacheBytes:    int64(o.cacheMiB) << 20,
		loadBatch:     o.loadBatch,
		compression:   o.pebbleCompression,
	}
}

// profile starts a CPU profile of one workload if -cpuprofile is set; the
// returned function stops it.
func profile(o *options, res *childResult, workload string) (stop func(), err error) {
	if o.cpuProfile == "" {
		return func() {}, nil
	}
	name := filepath.Join(o.cpuProfile, fmt.Sprintf("%s-%s-run%d.cpu.pprof", res.Engine, workload, res.Run))
	f, err := os.Create(name)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

func newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(time.Minute), 3) // nanoseconds, 3 significant figures
}

func latencyOf(h *hdrhistogram.Histogram) latency {
	us := func(ns int64) float64 { return float64(ns) / 1e3 }
	return latency{
		P50: us(h.ValueAtQuantile(50)), P99: us(h.ValueAtQuantile(99)),
		P999: us(h.ValueAtQuantile(99.9)), Max: us(h.Max()),
	}
}

// group runs n goroutines and returns the first error; the context passed
// to them is cancelled on the first error.
func group(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx, i); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}()
	}
	wg.Wait()
	return first
}

// share is worker i's part of total split over n workers.
func share(total, n, i int) int {
	s := total / n
	if i < total%n {
		s++
	}
	return s
}

// ---- write ----

func runWriteGroup(ctx context.Context, o *options, res *childResult) error {
	s, err := openStore(res.Engine, res.Dir, o.storeConfig(true))
	if err != nil {
		return err
	}
	wr, err := runWrite(ctx, o, res, s)
	res.Write = wr
	res.Shape = s.Shape()
	return errors.Join(err, s.Close())
}

func runWrite(ctx context.Context, o *options, res *childResult, s store) (*writeResult, error) {
	vals := newValueSource(o.seed, o.valueBytes)
	hists := make([]*hdrhistogram.Histogram, o.writers)
	for i := range hists {
		hists[i] = newHist()
	}
	stop, err := profile(o, res, "write")
	if err != nil {
		return nil, err
	}
	start := time.Now()
	err = group(ctx, o.writers, func(ctx context.Context, w int) error {
		r := rand.New(rand.NewPCG(o.seed^0x7772697465, uint64(res.Run)<<32|uint64(w)))
		pkey := make([]byte, 2+o.keyBytes)
		h := hists[w]
		for j := range share(o.writes, o.writers, w) {
			randomKey(pkey, r)
			t := time.Now()
			if err := s.Put(ctx, pkey, vals.at(uint64(w)<<32|uint64(j))); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			h.RecordValue(int64(time.Since(t)))
		}
		return nil
	})
	elapsed := time.Since(start)
	stop()
	if err != nil {
		return nil, err
	}
	all := mergeHists(hists)
	return &writeResult{
		Ops: o.writes, Writers: o.writers, Seconds: elapsed.Seconds(),
		OpsPerSec: float64(o.writes) / elapsed.Seconds(), Latency: latencyOf(all),
	}, nil
}

// mergeHists sums the per-worker histograms.
func mergeHists(hists []*hdrhistogram.Histogram) *hdrhistogram.Histogram {
	all := newHist()
	for _, h := range hists {
		all.Merge(h)
	}
	return all
}

// ---- load, read, scan ----

func runDataGroup(ctx context.Context, o *options, res *childResult) error {
	s, err := openStore(res.Engine, res.Dir, o.storeConfig(false))
	if err != nil {
		return err
	}
	err = runData(ctx, o, res, s)
	res.Shape = s.Shape()
	return errors.Join(err, s.Close())
}

func runData(ctx context.Context, o *options, res *childResult, s store) error {
	lr := &loadResult{Keys: o.keys}
	res.Load = lr
	vals := newValueSource(o.seed, o.valueBytes)

	runtime.GC()
	base, err := readMemStatus()
	if err != nil {
		return err
	}
	lr.RSSBase = base.RSS
	lr.PeakFromOpen = resetPeakRSS()

	stop, err := profile(o, res, "load")
	if err != nil {
		return err
	}
	start := time.Now()
	err = group(ctx, o.loadWorkers, func(ctx context.Context, w int) error {
		l := s.NewLoader()
		pkey := make([]byte, 2+o.keyBytes)
		for i := w; i < o.keys; i += o.loadWorkers {
			loadKey(pkey, o.seed, i)
			if err := l.Add(ctx, pkey, vals.at(uint64(i))); err != nil {
				return fmt.Errorf("load: %w", err)
			}
		}
		return l.Finish(ctx)
	})
	lr.LoadSeconds = time.Since(start).Seconds()
	lr.KeysPerSec = float64(o.keys) / lr.LoadSeconds
	if err != nil {
		stop()
		return err
	}
	if m, err := readMemStatus(); err == nil {
		lr.RSSUnflushed = m.RSS
	}
	t := time.Now()
	err = s.Flush(ctx)
	lr.FlushSeconds = time.Since(t).Seconds()
	if err != nil {
		stop()
		return fmt.Errorf("flush: %w", err)
	}
	if o.compact {
		t = time.Now()
		err = s.Compact(ctx)
		lr.CompactSecs = time.Since(t).Seconds()
		if err != nil {
			stop()
			return fmt.Errorf("compact: %w", err)
		}
	}
	t = time.Now()
	lr.Settled, err = s.Settle(ctx, o.settle)
	lr.SettleSeconds = time.Since(t).Seconds()
	stop()
	if err != nil {
		return err
	}

	runtime.GC()
	after, err := readMemStatus()
	if err != nil {
		return err
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	lr.RSSAfter, lr.RSSPeak = after.RSS, after.Peak
	lr.RSSPerMillion = float64(after.RSS-base.RSS) / (float64(o.keys) / 1e6)
	lr.GoHeapInuse, lr.GoHeapSys = ms.HeapInuse, ms.HeapSys
	if o.memProfile != "" {
		name := filepath.Join(o.memProfile, fmt.Sprintf("%s-afterload-run%d.heap.pprof", res.Engine, res.Run))
		if err := writeHeapProfile(name); err != nil {
			return err
		}
	}

	if o.has("read") {
		if res.Read, err = runRead(ctx, o, res, s); err != nil {
			return err
		}
		if m, err := readMemStatus(); err == nil {
			lr.RSSAfterReads = m.RSS
		}
	}
	if o.has("scan") {
		if res.Scan, err = runScan(o, res, s); err != nil {
			return err
		}
	}
	return nil
}

func writeHeapProfile(name string) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	return errors.Join(pprof.Lookup("heap").WriteTo(f, 0), f.Close())
}

func runRead(ctx context.Context, o *options, res *childResult, s store) (*readResult, error) {
	hists := make([]*hdrhistogram.Histogram, o.readers)
	for i := range hists {
		hists[i] = newHist()
	}
	stop, err := profile(o, res, "read")
	if err != nil {
		return nil, err
	}
	start := time.Now()
	err = group(ctx, o.readers, func(ctx context.Context, w int) error {
		r := rand.New(rand.NewPCG(o.seed^0x72656164, uint64(res.Run)<<32|uint64(w)))
		pkey := make([]byte, 2+o.keyBytes)
		h := hists[w]
		for j := range share(o.reads, o.readers, w) {
			if j&1023 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			loadKey(pkey, o.seed, r.IntN(o.keys))
			t := time.Now()
			n, found, err := s.Get(pkey)
			h.RecordValue(int64(time.Since(t)))
			if err != nil {
				return fmt.Errorf("read: %w", err)
			}
			if !found || n != o.valueBytes {
				return fmt.Errorf("read: key %x: found=%v, %d value bytes (want %d)", pkey, found, n, o.valueBytes)
			}
		}
		return nil
	})
	elapsed := time.Since(start)
	stop()
	if err != nil {
		return nil, err
	}
	all := mergeHists(hists)
	return &readResult{
		Ops: o.reads, Readers: o.readers, Seconds: elapsed.Seconds(),
		OpsPerSec: float64(o.reads) / elapsed.Seconds(), Latency: latencyOf(all),
	}, nil
}

func runScan(o *options, res *childResult, s store) (*scanResult, error) {
	stop, err := profile(o, res, "scan")
	if err != nil {
		return nil, err
	}
	var (
		n       int
		digest  uint32
		prev    []byte
		ordered = true
		badVal  = -1
	)
	table := crc32.MakeTable(crc32.Castagnoli)
	start := time.Now()
	err = s.Scan(func(pkey, value []byte) {
		if n > 0 && bytes.Compare(prev, pkey) >= 0 {
			ordered = false
		}
		if len(value) != o.valueBytes && badVal < 0 {
			badVal = n
		}
		prev = append(prev[:0], pkey...)
		digest = crc32.Update(digest, table, pkey)
		n++
	})
	elapsed := time.Since(start)
	stop()
	if err != nil {
		return nil, fmt.Errorf("scan: %w", err)
	}
	switch {
	case !ordered:
		return nil, fmt.Errorf("scan: keys out of order")
	case badVal >= 0:
		return nil, fmt.Errorf("scan: key #%d has a value of the wrong size", badVal)
	case n != o.keys:
		return nil, fmt.Errorf("scan: %d keys, want %d", n, o.keys)
	}
	return &scanResult{
		Keys: n, Seconds: elapsed.Seconds(), KeysPerSec: float64(n) / elapsed.Seconds(),
		Digest: fmt.Sprintf("%08x", digest),
	}, nil
}
