package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

func printHeader(w io.Writer, o *options, rep *report) {
	fmt.Fprintf(w, "enginebench: dbx engine vs %s\n", rep.Pebble)
	fmt.Fprintf(w, "command:    %s\n", shellQuote(rep.Command))
	if len(rep.Command) > 0 && strings.Contains(rep.Command[0], "go-build") {
		fmt.Fprintf(w, "            (built by go run: go run ./enginebench %s)\n", shellQuote(rep.Command[1:]))
	}
	fmt.Fprintf(w, "cwd:        %s\n", rep.Cwd)
	fmt.Fprintf(w, "go:         %s %s/%s, GOMAXPROCS=%d, NumCPU=%d\n", rep.GoVersion, rep.GOOS, rep.GOARCH, rep.GOMAXPROCS, rep.NumCPU)
	fmt.Fprintf(w, "dir:        %s\n", rep.Disk)
	fmt.Fprintf(w, "config:     memtable %d MiB (dbx MemtableBytes, per shard, %d shards; pebble MemTableSize), block cache %d MiB both\n",
		o.memtableMiB, rep.GOMAXPROCS, o.cacheMiB)
	fmt.Fprintf(w, "            write durability: fsync per commit group (dbx SyncAlways, pebble Sync); load: unsynced (dbx SyncNone, pebble NoSync)\n")
	fmt.Fprintf(w, "            pebble: 4 KiB blocks, bloom 10 bits/key, compression %s (dbx: 4 KiB blocks, bloom 10 bits/key, no compression)\n", o.pebbleCompression)
	fmt.Fprintf(w, "workloads:  %s\n", describeWorkloads(o))
	fmt.Fprintf(w, "runs:       %d per engine and workload, each in a fresh child process and directory, engine order alternating\n", o.runs)
	fmt.Fprintf(w, "started:    %s\n\n", rep.Started.Format("2006-01-02 15:04:05 MST"))
}

func describeWorkloads(o *options) string {
	var parts []string
	if o.has("write") {
		parts = append(parts, fmt.Sprintf("write %d synced puts by %d writers", o.writes, o.writers))
	}
	if o.has("read") || o.has("scan") {
		load := fmt.Sprintf("load %d keys (batches of %d, %d loaders), flush", o.keys, o.loadBatch, o.loadWorkers)
		if o.compact {
			load += ", full compaction"
		}
		if o.settle > 0 {
			load += fmt.Sprintf(", settle <= %s", o.settle)
		}
		parts = append(parts, load)
	}
	if o.has("read") {
		parts = append(parts, fmt.Sprintf("read %d random gets by %d readers", o.reads, o.readers))
	}
	if o.has("scan") {
		parts = append(parts, "one full ordered scan")
	}
	return fmt.Sprintf("%s; keys %d+2 B (bucket), values %d B, seed %d", strings.Join(parts, "; "), o.keyBytes, o.valueBytes, o.seed)
}

func printTable(w io.Writer, o *options, rep *report) {
	fmt.Fprintf(w, "RESULTS: median of %d runs; ratio = dbx median / pebble median\n", o.runs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "metric\t")
	for _, e := range o.engines {
		fmt.Fprintf(tw, "%s\t", e)
	}
	fmt.Fprintf(tw, "dbx/pebble\tbetter\t\n")
	for _, row := range rep.Summary {
		fmt.Fprintf(tw, "%s\t", row.Metric)
		for _, e := range o.engines {
			if v, ok := row.Median[e]; ok {
				fmt.Fprintf(tw, "%s\t", fmtValue(row.Unit, v))
			} else {
				fmt.Fprintf(tw, "-\t")
			}
		}
		ratio := "-"
		if row.Ratio != nil {
			ratio = fmt.Sprintf("%.2fx", *row.Ratio)
		}
		fmt.Fprintf(tw, "%s\t%s\t\n", ratio, row.Better)
	}
	tw.Flush()

	fmt.Fprintf(w, "\nPER RUN (run 1, 2, ...)\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, row := range rep.Summary {
		fmt.Fprintf(tw, "%s\t", row.Metric)
		for _, e := range o.engines {
			var vs []string
			for _, v := range row.Values[e] {
				vs = append(vs, fmtValue(row.Unit, v))
			}
			fmt.Fprintf(tw, "%s: %s\t", e, strings.Join(vs, "  "))
		}
		fmt.Fprintf(tw, "\n")
	}
	tw.Flush()

	fmt.Fprintf(w, "\nDETAILS (state at the end of each child)\n")
	for _, r := range rep.Results {
		extra := ""
		if r.Load != nil {
			extra = fmt.Sprintf(" | go heap in use %s of %s | flush %.1fs settle %.1fs",
				fmtBytes(float64(r.Load.GoHeapInuse)), fmtBytes(float64(r.Load.GoHeapSys)), r.Load.FlushSeconds, r.Load.SettleSeconds)
		}
		fmt.Fprintf(w, "  run %d %-6s %-5s %s%s\n", r.Run, r.Engine, r.Group, fmtShape(r.Shape), extra)
	}
	if len(rep.Checks) > 0 {
		fmt.Fprintf(w, "\nCHECKS\n")
		for _, c := range rep.Checks {
			fmt.Fprintf(w, "  %s\n", c)
		}
	}
	fmt.Fprintf(w, "\ntotal %.0fs\n", rep.Seconds)
}

func fmtValue(unit string, v float64) string {
	switch unit {
	case "us":
		return fmtLatency(v)
	case "bytes":
		return fmtBytes(v)
	case "s":
		return fmt.Sprintf("%.2fs", v)
	}
	return commas(v)
}

func fmtLatency(us float64) string {
	if us >= 1000 {
		return fmt.Sprintf("%.2fms", us/1000)
	}
	return fmt.Sprintf("%.1fus", us)
}

func fmtBytes(b float64) string { return fmt.Sprintf("%.1fMiB", b/(1<<20)) }

// commas formats v rounded to an integer with thousands separators.
func commas(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func fmtShape(m map[string]any) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		v := m[k]
		switch x := v.(type) {
		case float64:
			if strings.HasSuffix(k, "_bytes") {
				v = fmtBytes(x)
			} else if x == float64(int64(x)) {
				v = int64(x)
			} else {
				v = fmt.Sprintf("%.1f", x)
			}
		}
		parts = append(parts, fmt.Sprintf("%s=%v", k, v))
	}
	return strings.Join(parts, " ")
}

// shellQuote renders args as one shell command line.
func shellQuote(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r == '-' || r == '_' || r == '.' || r == '/' || r == '=' || r == ',' || r == ':' ||
				r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
		}) < 0 {
			out[i] = a
		} else {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(out, " ")
}
