package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"
)

// report is the whole output; -json prints it as is.
type report struct {
	Command    []string          `json:"command"`
	Cwd        string            `json:"cwd"`
	GoVersion  string            `json:"go_version"`
	GOOS       string            `json:"goos"`
	GOARCH     string            `json:"goarch"`
	GOMAXPROCS int               `json:"gomaxprocs"`
	NumCPU     int               `json:"num_cpu"`
	Pebble     string            `json:"pebble"`
	Dir        string            `json:"dir"`
	Disk       string            `json:"disk"`
	Flags      map[string]string `json:"flags"`
	Started    time.Time         `json:"started"`
	Seconds    float64           `json:"seconds"`
	Summary    []summaryRow      `json:"summary"`
	Checks     []string          `json:"checks"`
	Results    []*childResult    `json:"results"`
}

// summaryRow is one metric: every run's value per engine, the medians and
// the ratio of medians dbx/pebble.
type summaryRow struct {
	Metric string               `json:"metric"`
	Unit   string               `json:"unit"`
	Better string               `json:"better"` // "higher" or "lower"
	Values map[string][]float64 `json:"values"`
	Median map[string]float64   `json:"median"`
	Ratio  *float64             `json:"ratio_dbx_over_pebble,omitempty"`
}

func parentMain(o *options) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cwd, _ := os.Getwd()
	rep := &report{
		Command: os.Args, Cwd: cwd,
		GoVersion: runtime.Version(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH,
		GOMAXPROCS: runtime.GOMAXPROCS(0), NumCPU: runtime.NumCPU(),
		Pebble: pebbleVersion(), Dir: o.dir, Disk: diskInfo(o.dir),
		Flags: o.flags, Started: time.Now(),
	}
	if !o.jsonOut {
		printHeader(os.Stdout, o, rep)
	}
	var groups []string
	if o.has("write") {
		groups = append(groups, "write")
	}
	if o.has("read") || o.has("scan") {
		groups = append(groups, "data")
	}
	for run := 1; run <= o.runs; run++ {
		// Alternate which engine goes first, so neither always runs on the
		// quieter (or busier) half of a noisy machine.
		order := slices.Clone(o.engines)
		if run%2 == 0 {
			slices.Reverse(order)
		}
		for _, g := range groups {
			for _, e := range order {
				t := time.Now()
				fmt.Fprintf(os.Stderr, "enginebench: run %d/%d %s %s ...\n", run, o.runs, e, g)
				res, err := spawn(exe, e, g, run)
				if err != nil {
					return fmt.Errorf("run %d %s %s: %w", run, e, g, err)
				}
				fmt.Fprintf(os.Stderr, "enginebench: run %d/%d %s %s done in %.1fs: %s\n",
					run, o.runs, e, g, time.Since(t).Seconds(), brief(res))
				rep.Results = append(rep.Results, res)
			}
		}
	}
	rep.Seconds = time.Since(rep.Started).Seconds()
	rep.Summary = summarize(o, rep.Results)
	rep.Checks = checks(o, rep.Results)
	if o.jsonFile != "" {
		if err := writeJSON(o.jsonFile, rep); err != nil {
			return err
		}
	}
	if o.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printTable(os.Stdout, o, rep)
	return nil
}

// spawn runs one child: this binary with the same flags plus -child, its
// result on fd 3, its stdout and stderr on our stderr.
func spawn(exe, engineName, group string, run int) (*childResult, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	args := append(slices.Clone(os.Args[1:]), "-child", fmt.Sprintf("%s/%s/%d", engineName, group, run))
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.ExtraFiles = []*os.File{w}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	w.Close()
	data, readErr := io.ReadAll(r)
	r.Close()
	waitErr := cmd.Wait()
	res := new(childResult)
	if len(data) == 0 || json.Unmarshal(data, res) != nil {
		return nil, fmt.Errorf("child reported nothing (exit: %v, read: %v)", waitErr, readErr)
	}
	if res.Err != "" {
		return nil, fmt.Errorf("%s", res.Err)
	}
	if waitErr != nil {
		return nil, waitErr
	}
	return res, nil
}

func brief(r *childResult) string {
	var parts []string
	if r.Write != nil {
		parts = append(parts, fmt.Sprintf("write %.0f ops/s p99 %s", r.Write.OpsPerSec, fmtLatency(r.Write.Latency.P99)))
	}
	if r.Load != nil {
		parts = append(parts, fmt.Sprintf("load %.0f keys/s, RSS +%s", r.Load.KeysPerSec, fmtBytes(float64(r.Load.RSSAfter-r.Load.RSSBase))))
	}
	if r.Read != nil {
		parts = append(parts, fmt.Sprintf("read %.0f ops/s", r.Read.OpsPerSec))
	}
	if r.Scan != nil {
		parts = append(parts, fmt.Sprintf("scan %.0f keys/s", r.Scan.KeysPerSec))
	}
	return strings.Join(parts, ", ")
}

func pebbleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/cockroachdb/pebble" {
				return d.Path + " " + d.Version
			}
		}
	}
	return "github.com/cockroachdb/pebble (version unknown)"
}

func writeJSON(name string, rep *report) error {
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(name, append(data, '\n'), 0o644)
}

// ---- summary ----

type metricDef struct {
	name   string // "write ops/s"
	unit   string
	higher bool // higher is better
	get    func(*childResult) (float64, bool)
}

var metricDefs = []metricDef{
	{"write ops/s", "ops/s", true, func(r *childResult) (float64, bool) {
		return field(r.Write != nil, func() float64 { return r.Write.OpsPerSec })
	}},
	{"write p50", "us", false, func(r *childResult) (float64, bool) {
		return field(r.Write != nil, func() float64 { return r.Write.Latency.P50 })
	}},
	{"write p99", "us", false, func(r *childResult) (float64, bool) {
		return field(r.Write != nil, func() float64 { return r.Write.Latency.P99 })
	}},
	{"read ops/s", "ops/s", true, func(r *childResult) (float64, bool) {
		return field(r.Read != nil, func() float64 { return r.Read.OpsPerSec })
	}},
	{"read p50", "us", false, func(r *childResult) (float64, bool) {
		return field(r.Read != nil, func() float64 { return r.Read.Latency.P50 })
	}},
	{"read p99", "us", false, func(r *childResult) (float64, bool) {
		return field(r.Read != nil, func() float64 { return r.Read.Latency.P99 })
	}},
	{"scan keys/s", "keys/s", true, func(r *childResult) (float64, bool) {
		return field(r.Scan != nil, func() float64 { return r.Scan.KeysPerSec })
	}},
	{"RSS delta per 1M keys", "bytes", false, func(r *childResult) (float64, bool) {
		return field(r.Load != nil, func() float64 { return r.Load.RSSPerMillion })
	}},
	{"RSS peak (VmHWM)", "bytes", false, func(r *childResult) (float64, bool) {
		return field(r.Load != nil, func() float64 { return float64(r.Load.RSSPeak) })
	}},
	{"RSS unflushed per 1M keys (info)", "bytes", false, func(r *childResult) (float64, bool) {
		return field(r.Load != nil, func() float64 {
			return float64(r.Load.RSSUnflushed-r.Load.RSSBase) / (float64(r.Load.Keys) / 1e6)
		})
	}},
	{"load keys/s (info)", "keys/s", true, func(r *childResult) (float64, bool) {
		return field(r.Load != nil, func() float64 { return r.Load.KeysPerSec })
	}},
	{"flush+settle s (info)", "s", false, func(r *childResult) (float64, bool) {
		return field(r.Load != nil, func() float64 { return r.Load.FlushSeconds + r.Load.CompactSecs + r.Load.SettleSeconds })
	}},
}

func field(ok bool, f func() float64) (float64, bool) {
	if !ok {
		return 0, false
	}
	return f(), true
}

func summarize(o *options, results []*childResult) []summaryRow {
	var rows []summaryRow
	for _, m := range metricDefs {
		row := summaryRow{Metric: m.name, Unit: m.unit, Better: "lower",
			Values: map[string][]float64{}, Median: map[string]float64{}}
		if m.higher {
			row.Better = "higher"
		}
		for _, r := range results {
			if v, ok := m.get(r); ok {
				row.Values[r.Engine] = append(row.Values[r.Engine], v)
			}
		}
		if len(row.Values) == 0 {
			continue
		}
		for e, vs := range row.Values {
			row.Median[e] = median(vs)
		}
		d, okD := row.Median["dbx"]
		p, okP := row.Median["pebble"]
		if okD && okP && p != 0 {
			ratio := d / p
			row.Ratio = &ratio
		}
		rows = append(rows, row)
	}
	return rows
}

func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// checks lists correctness and fairness facts worth seeing next to the numbers.
func checks(o *options, results []*childResult) []string {
	var out []string
	digests := map[string]bool{}
	for _, r := range results {
		if r.Scan != nil {
			digests[r.Scan.Digest] = true
		}
		if r.Load != nil && !r.Load.Settled && o.settle > 0 {
			out = append(out, fmt.Sprintf("WARNING: run %d %s: background work did not go idle within -settle %s", r.Run, r.Engine, o.settle))
		}
		if r.Load != nil && !r.Load.PeakFromOpen {
			out = append(out, fmt.Sprintf("note: run %d %s: VmHWM could not be reset; peak includes process start", r.Run, r.Engine))
		}
	}
	switch len(digests) {
	case 0:
	case 1:
		for d := range digests {
			out = append(out, fmt.Sprintf("ok: every scan returned the same %d keys in the same order (digest %s)", o.keys, d))
		}
	default:
		out = append(out, fmt.Sprintf("WARNING: scans returned different key sequences (%d distinct digests)", len(digests)))
	}
	if o.has("read") {
		out = append(out, fmt.Sprintf("ok: every read found its key with a %d-byte value", o.valueBytes))
	}
	return out
}
