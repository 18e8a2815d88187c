package bench

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram range: 1 µs to 60 s, 3 significant figures.
const (
	latencyUsMin = 1
	latencyUsMax = 60_000_000
	histSigFigs  = 3
)

func newHist() *hdr.Histogram { return hdr.New(latencyUsMin, latencyUsMax, histSigFigs) }

// recorder collects latencies and errors from every worker in a few
// mutex-guarded shards; no I/O happens under a shard's lock.
type recorder struct {
	shards []*shard
}

type shard struct {
	mu       sync.Mutex
	total    *hdr.Histogram // measured phase only
	interval *hdr.Histogram // since the last progress line, any phase
	ops      int64          // measured phase
	errs     int64
	phOps    int64 // current phase, any kind
	phErrs   int64
	ivOps    int64
	ivErrs   int64
	ivErr    string           // the latest error message of the interval
	msgs     map[string]int64 // at most errorMsgsMax distinct
}

func (r *recorder) shardFor(worker int) *shard { return r.shards[worker%len(r.shards)] }

// record adds one batch: every operation took lat; errs holds one entry per
// operation. Latencies of failed operations are not recorded.
func (s *shard) record(lat time.Duration, errs []error, measured bool) {
	us := min(max(lat.Microseconds(), latencyUsMin), latencyUsMax)
	var bad int64
	for _, err := range errs {
		if err != nil {
			bad++
		}
	}
	ok := int64(len(errs)) - bad
	s.mu.Lock()
	defer s.mu.Unlock()
	n := int64(len(errs))
	s.phOps += n
	s.phErrs += bad
	s.ivOps += n
	s.ivErrs += bad
	if ok > 0 {
		_ = s.interval.RecordValues(us, ok) // us is clamped into range
	}
	if measured {
		s.ops += n
		s.errs += bad
		if ok > 0 {
			_ = s.total.RecordValues(us, ok)
		}
	}
	for _, err := range errs {
		if err == nil {
			continue
		}
		m := err.Error()
		s.ivErr = m
		if _, seen := s.msgs[m]; seen || len(s.msgs) < errorMsgsMax {
			s.msgs[m]++
		}
	}
}

// interval is what the progress line of one interval shows.
type interval struct {
	ops, errs, okOps int64
	p99              int64 // µs, over okOps
	lastErr          string
}

// takeInterval returns and resets what happened since the last call.
func (r *recorder) takeInterval() interval {
	h := newHist()
	var iv interval
	for _, s := range r.shards {
		s.mu.Lock()
		h.Merge(s.interval)
		s.interval.Reset()
		iv.ops += s.ivOps
		iv.errs += s.ivErrs
		if s.ivErr != "" {
			iv.lastErr = s.ivErr
		}
		s.ivOps, s.ivErrs, s.ivErr = 0, 0, ""
		s.mu.Unlock()
	}
	iv.okOps = h.TotalCount()
	iv.p99 = h.ValueAtQuantile(99)
	return iv
}

// takePhaseCounts returns and resets the operations and errors of the phase
// that just ended.
func (r *recorder) takePhaseCounts() (ops, errs int64) {
	for _, s := range r.shards {
		s.mu.Lock()
		ops += s.phOps
		errs += s.phErrs
		s.phOps, s.phErrs = 0, 0
		s.mu.Unlock()
	}
	return ops, errs
}

// fill merges every shard into res.
func (r *recorder) fill(res *Result) {
	h := newHist()
	msgs := map[string]int64{}
	for _, s := range r.shards {
		s.mu.Lock()
		h.Merge(s.total)
		res.Ops += s.ops
		res.Errors += s.errs
		for m, n := range s.msgs {
			msgs[m] += n
		}
		s.mu.Unlock()
	}
	res.Latency = LatencyUs{
		Count: h.TotalCount(),
		Min:   h.Min(), Mean: h.Mean(),
		P50: h.ValueAtQuantile(50), P90: h.ValueAtQuantile(90),
		P99: h.ValueAtQuantile(99), P999: h.ValueAtQuantile(99.9),
		Max: h.Max(),
	}
	for m, n := range msgs {
		res.ErrorMessages = append(res.ErrorMessages, ErrorMessage{Message: m, Count: n})
	}
	slices.SortFunc(res.ErrorMessages, func(a, b ErrorMessage) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Message, b.Message))
	})
	if len(res.ErrorMessages) > errorMsgsMax {
		res.ErrorMessages = res.ErrorMessages[:errorMsgsMax]
	}
	if res.Elapsed > 0 {
		res.ThroughputOpsPerSec = float64(res.Ops) / res.Elapsed.Seconds()
	}
}

// Result is what Run measured. Its JSON form is the --json output, which
// ReadResult reads back.
type Result struct {
	// Label is Config.Label.
	Label  string    `json:"label,omitempty"`
	Config RunConfig `json:"config"`
	// Ops counts measured operations that completed, failed ones included.
	Ops    int64 `json:"ops"`
	Errors int64 `json:"errors"`
	// ErrorMessages are the most frequent distinct errors (at most 5).
	ErrorMessages       []ErrorMessage `json:"error_messages"`
	Elapsed             time.Duration  `json:"-"`
	ElapsedSeconds      float64        `json:"elapsed_seconds"`
	ThroughputOpsPerSec float64        `json:"throughput_ops_per_sec"`
	// Latency is over successful measured operations.
	Latency     LatencyUs `json:"latency_us"`
	LoadOps     int64     `json:"load_ops"`
	LoadErrors  int64     `json:"load_errors"`
	Interrupted bool      `json:"interrupted"`
}

// RunConfig is the part of Config a report repeats.
type RunConfig struct {
	// Target is what was driven: "resp" (Run) or another Target's Name.
	Target       string   `json:"target"`
	Addrs        []string `json:"addrs"`
	Cluster      bool     `json:"cluster"`
	Workload     string   `json:"workload"`
	Mix          string   `json:"mix,omitempty"`
	TxnKeys      int      `json:"txn_keys,omitempty"`
	CrossNode    bool     `json:"cross_node,omitempty"`
	SameNode     bool     `json:"same_node,omitempty"`
	Clients      int      `json:"clients"`
	Pipeline     int      `json:"pipeline"`
	Requests     int64    `json:"requests"`
	DurationSec  float64  `json:"duration_seconds"`
	Keys         int64    `json:"keys"`
	Distribution string   `json:"distribution"`
	ValueBytes   int      `json:"value_bytes"`
	MSetKeys     int      `json:"mset_keys,omitempty"`
	Seed         uint64   `json:"seed"`
}

func resultConfig(c *Config, target string) RunConfig {
	rc := RunConfig{
		Target: target, Addrs: c.Addrs, Cluster: c.Cluster, Workload: c.Workload, Mix: c.mix(),
		Clients: c.Clients, Pipeline: c.Pipeline, Requests: c.Requests, DurationSec: c.Duration.Seconds(),
		Keys: c.Keys, Distribution: c.Distribution, ValueBytes: c.ValueBytes, Seed: c.Seed,
	}
	switch c.Workload {
	case WorkloadMSet:
		rc.MSetKeys = c.MSetKeys
	case WorkloadTxn:
		rc.TxnKeys, rc.CrossNode, rc.SameNode = c.TxnKeys, c.CrossNode, c.SameNode
	}
	return rc
}

// LatencyUs summarises the latency histogram, in microseconds.
type LatencyUs struct {
	Count int64   `json:"count"`
	Min   int64   `json:"min"`
	Mean  float64 `json:"mean"`
	P50   int64   `json:"p50"`
	P90   int64   `json:"p90"`
	P99   int64   `json:"p99"`
	P999  int64   `json:"p999"`
	Max   int64   `json:"max"`
}

// ErrorMessage is one distinct error and how often it occurred.
type ErrorMessage struct {
	Message string `json:"message"`
	Count   int64  `json:"count"`
}

// WriteJSON writes res as one indented JSON object.
func (res *Result) WriteJSON(w io.Writer) error {
	out := *res
	out.ElapsedSeconds = res.Elapsed.Seconds()
	if out.ErrorMessages == nil {
		out.ErrorMessages = []ErrorMessage{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(&out)
}

// ReadResult reads one Result written by WriteJSON.
func ReadResult(r io.Reader) (*Result, error) {
	var res Result
	dec := json.NewDecoder(r)
	if err := dec.Decode(&res); err != nil {
		return nil, fmt.Errorf("not a dbx-bench --json result: %w", err)
	}
	if res.Config.Workload == "" {
		return nil, errors.New("not a dbx-bench --json result: no config.workload")
	}
	res.Elapsed = time.Duration(res.ElapsedSeconds * float64(time.Second))
	return &res, nil
}

// workloadName is the workload with what shapes it: "mixed A", "txn 2 keys
// cross-node", "get".
func (c *RunConfig) workloadName() string {
	s := c.Workload
	switch {
	case c.Workload == WorkloadMixed:
		s += " " + c.Mix
	case c.MSetKeys > 0:
		s += fmt.Sprintf(" %d keys", c.MSetKeys)
	case c.TxnKeys > 0:
		s += fmt.Sprintf(" %d keys", c.TxnKeys)
		if c.CrossNode {
			s += " cross-node"
		}
		if c.SameNode {
			s += " same-node"
		}
	}
	return s
}

// WriteText writes the human-readable summary.
func (res *Result) WriteText(w io.Writer) error {
	c := res.Config
	var b strings.Builder
	target := cmp.Or(c.Target, "resp")
	mode := ""
	switch {
	case c.Cluster:
		mode = " (cluster)"
	case target == "resp":
		mode = " (round-robin)"
	}
	if res.Label != "" {
		fmt.Fprintf(&b, "run      %s\n", res.Label)
	}
	fmt.Fprintf(&b, "workload %s  clients %d  pipeline %d  keys %d (%s)  value %d B  %s %s%s\n",
		c.workloadName(), c.Clients, c.Pipeline, c.Keys, c.Distribution, c.ValueBytes, target, strings.Join(c.Addrs, ","), mode)
	if res.LoadOps > 0 {
		fmt.Fprintf(&b, "load     %d keys  errors %d\n", res.LoadOps, res.LoadErrors)
	}
	if res.Interrupted {
		b.WriteString("INTERRUPTED: partial results\n")
	}
	fmt.Fprintf(&b, "ops      %d  errors %d  elapsed %s  throughput %.0f ops/s\n",
		res.Ops, res.Errors, res.Elapsed.Round(time.Millisecond), res.ThroughputOpsPerSec)
	l := res.Latency
	if l.Count == 0 {
		b.WriteString("latency  n/a: no operation succeeded\n")
	} else {
		fmt.Fprintf(&b, "latency  p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (min %s, mean %s, n=%d)\n",
			fmtMicros(l.P50), fmtMicros(l.P90), fmtMicros(l.P99), fmtMicros(l.P999), fmtMicros(l.Max),
			fmtMicros(l.Min), fmtMicros(int64(l.Mean)), l.Count)
	}
	for _, m := range res.ErrorMessages {
		fmt.Fprintf(&b, "error    %dx %s\n", m.Count, m.Message)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// fmtMicros renders microseconds with a readable unit.
func fmtMicros(us int64) string {
	switch {
	case us < 1000:
		return fmt.Sprintf("%dµs", us)
	case us < 1_000_000:
		return fmt.Sprintf("%.2fms", float64(us)/1e3)
	default:
		return fmt.Sprintf("%.2fs", float64(us)/1e6)
	}
}
