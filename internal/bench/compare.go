package bench

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// WriteComparison writes results side by side, one row per run, with the
// throughput and p99 of each as a ratio to the first run's. A run is named
// by its Label, else by names[i] (dbx-bench --compare passes the file
// name). The notes column says what makes a row less comparable: an
// interrupted run, failed operations, or settings that differ from the
// first run's.
func WriteComparison(w io.Writer, names []string, results []*Result) error {
	if len(results) == 0 || len(names) != len(results) {
		return fmt.Errorf("compare: %d names for %d results (want one per result, at least one)", len(names), len(results))
	}
	first := results[0]
	rows := [][]string{{"run", "target", "workload", "clients", "pipeline", "value B", "ops/s", "vs first", "p50", "p99", "vs first", "p99.9", "errors", "notes"}}
	for i, r := range results {
		name := r.Label
		if name == "" {
			name = names[i]
		}
		c := &r.Config
		l := r.Latency
		p50, p99, p999 := "n/a", "n/a", "n/a"
		if l.Count > 0 {
			p50, p99, p999 = fmtMicros(l.P50), fmtMicros(l.P99), fmtMicros(l.P999)
		}
		rows = append(rows, []string{
			name, c.Target, c.workloadName(), strconv.Itoa(c.Clients), strconv.Itoa(c.Pipeline), strconv.Itoa(c.ValueBytes),
			fmtThousands(r.ThroughputOpsPerSec), ratio(r.ThroughputOpsPerSec, first.ThroughputOpsPerSec, true),
			p50, p99, ratio(float64(l.P99), float64(first.Latency.P99), l.Count > 0 && first.Latency.Count > 0),
			p999, strconv.FormatInt(r.Errors, 10), notes(r, first),
		})
	}
	// Text columns left-aligned, numbers right-aligned.
	left := map[int]bool{0: true, 1: true, 2: true, 13: true}
	widths := make([]int, len(rows[0]))
	for _, row := range rows {
		for j, cell := range row {
			widths[j] = max(widths[j], utf8.RuneCountInString(cell))
		}
	}
	var b strings.Builder
	for _, row := range rows {
		var line strings.Builder
		for j, cell := range row {
			pad := strings.Repeat(" ", widths[j]-utf8.RuneCountInString(cell))
			if j > 0 {
				line.WriteString("  ")
			}
			if left[j] {
				line.WriteString(cell + pad)
			} else {
				line.WriteString(pad + cell)
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
	b.WriteString("ops/s: higher is better; p99: lower is better; ratios are to the first row\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// ratio formats a/b, or n/a when b is 0 or ok is false.
func ratio(a, b float64, ok bool) string {
	if !ok || b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

// notes lists what makes r less comparable with first: an interrupted run,
// failures, and the settings that differ from first's.
func notes(r, first *Result) string {
	var ns []string
	if r.Interrupted {
		ns = append(ns, "interrupted (partial)")
	}
	if r.Errors > 0 && len(r.ErrorMessages) > 0 {
		ns = append(ns, "error: "+clip(r.ErrorMessages[0].Message, 60))
	}
	a, b := &r.Config, &first.Config
	var differ []string
	for _, d := range []struct {
		name        string
		this, other any
	}{
		{"workload", a.workloadName(), b.workloadName()},
		{"clients", a.Clients, b.Clients},
		{"pipeline", a.Pipeline, b.Pipeline},
		{"value bytes", a.ValueBytes, b.ValueBytes},
		{"keys", a.Keys, b.Keys},
		{"distribution", a.Distribution, b.Distribution},
	} {
		if d.this != d.other {
			differ = append(differ, d.name)
		}
	}
	if len(differ) > 0 {
		ns = append(ns, "differs from first: "+strings.Join(differ, ", "))
	}
	return strings.Join(ns, "; ")
}

// fmtThousands renders a rate rounded to an integer with thousands
// separators: 125707.4 → "125,707".
func fmtThousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
