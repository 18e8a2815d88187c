package chaos

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/anishathalye/porcupine"
)

// FaultReport is one injected fault and the recovery after its heal.
type FaultReport struct {
	N       int           `json:"n"`
	Nemesis string        `json:"nemesis"`
	Desc    string        `json:"desc"`
	At      time.Duration `json:"at"`   // injection, since the run started
	Held    time.Duration `json:"held"` // injection to heal
	// FirstOK, Served and Converged are measured from the heal: the first
	// successful workload operation invoked after it; every node serving a
	// key of every owner; every node reporting the same leader and epoch
	// with all members active. Negative: not reached.
	FirstOK, Served, Converged time.Duration
	Leader                     string `json:"leader,omitempty"`
	Epoch                      uint64 `json:"epoch,omitempty"`
	Note                       string `json:"note,omitempty"`
	Err                        string `json:"err,omitempty"`
	Failure                    string `json:"failure,omitempty"`
}

// Recovery is the time from heal to full service: the later of Served and
// Converged (negative when either was not reached).
func (f FaultReport) Recovery() time.Duration {
	if f.Served < 0 || f.Converged < 0 {
		return -1
	}
	return max(f.Served, f.Converged)
}

// Report is everything a run did and found.
type Report struct {
	Name          string
	Seed          uint64
	Nodes, Voters int
	Started       time.Time
	Took          time.Duration
	FaultPhase    time.Duration
	// Multi reports whether the server accepted WATCH/MULTI/EXEC (else
	// compare-and-set and bank were skipped; MultiWhy says why).
	Multi    bool
	MultiWhy string
	Skipped  []string // nemeses that could not run here, with the reason
	Faults   []FaultReport
	Failures []string

	RegisterKeys   int // keys used (every generation)
	RegisterOps    []RegisterOp
	RegisterResult *RegisterResult
	BankTotal      int64
	BankReads      []BankRead
	BankTransfers  []BankTransfer
	BankCounts     BankCounts
	BankResult     *BankResult
	SnapshotResult *SnapshotResult
	SetAttempts    []SetAttempt
	SetFinal       *SetFinal
	SetResult      *SetResult
}

// OK reports whether the run found no violation and recovered from every
// fault.
func (r *Report) OK() bool { return len(r.Failures) == 0 }

func (r *Report) String() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("chaos run %s: seed %d, %d nodes (%d Raft voters), took %s, faults for %s\n",
		r.Name, r.Seed, r.Nodes, r.Voters, r.Took.Round(time.Second), r.FaultPhase.Round(time.Second))
	if r.Multi {
		p("server: WATCH/MULTI/EXEC accepted\n")
	} else {
		p("server: WATCH/MULTI/EXEC not usable (%s)\n", r.MultiWhy)
	}

	p("operations:\n")
	if r.RegisterResult != nil {
		kinds := map[RegisterKind]int{}
		outcomes := map[Outcome]int{}
		for _, op := range r.RegisterOps {
			kinds[op.Kind]++
			outcomes[op.Outcome]++
		}
		p("  register  %d (get %d, set %d, cas %d; ok %d, failed %d, unknown %d) on %d keys\n",
			len(r.RegisterOps), kinds[RegGet], kinds[RegSet], kinds[RegCAS], outcomes[OK], outcomes[Failed], outcomes[Unknown], r.RegisterKeys)
	}
	if r.BankResult != nil {
		c := r.BankCounts
		p("  bank      %d transfers (ok %d, conflict %d, insufficient %d, failed %d, unknown %d), %d reads (+%d failed reads), total %d\n",
			c.OK+c.Conflict+c.Insufficient+c.Failed+c.Unknown, c.OK, c.Conflict, c.Insufficient, c.Failed, c.Unknown, c.Reads, c.ReadErrors, r.BankTotal)
	}
	if r.SetResult != nil {
		s := r.SetResult
		p("  set       %d inserts (acknowledged %d, failed %d, unknown %d)\n", s.Attempted, s.Acked, s.Failed, s.Unknown)
	}

	p("faults: %d injected", len(r.Faults))
	if len(r.Skipped) > 0 {
		p(", %d nemeses skipped", len(r.Skipped))
	}
	p("; recovery times are from the heal\n")
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  #\tnemesis\tat\theld\tfirst op\tserved\tconverged\twhat\t")
	var worst, worstFirst time.Duration
	for _, f := range r.Faults {
		what := f.Desc
		if f.Note != "" {
			what += "; " + f.Note
		}
		if f.Err != "" {
			what += "; ERROR " + f.Err
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", f.N, f.Nemesis, f.At.Round(time.Second), f.Held.Round(100*time.Millisecond),
			durOrDash(f.FirstOK), durOrDash(f.Served), durOrDash(f.Converged), what)
		worst = max(worst, f.Recovery())
		worstFirst = max(worstFirst, f.FirstOK)
	}
	tw.Flush()
	for _, s := range r.Skipped {
		p("  skipped %s\n", s)
	}
	if len(r.Faults) > 0 {
		p("recovery, worst over the faults: first successful op %s, full service and agreement %s\n", durOrDash(worstFirst), durOrDash(worst))
	}

	p("checkers:\n")
	if r.RegisterResult != nil {
		p("  register: %s\n", r.RegisterResult)
		if !r.Multi {
			p("  cas: skipped (%s)\n", shortWhy(r.MultiWhy))
		}
	}
	switch {
	case r.BankResult != nil:
		p("  bank: %s\n", r.BankResult)
	case !r.Multi:
		p("  bank: skipped (%s)\n", shortWhy(r.MultiWhy))
	}
	if r.SnapshotResult != nil {
		p("  snapshot: %s\n", r.SnapshotResult)
	}
	if r.SetResult != nil {
		p("  set: %s\n", r.SetResult)
	}
	if r.OK() {
		p("verdict: PASS (0 violations)\n")
	} else {
		p("verdict: FAIL\n  %s\n", strings.Join(r.Failures, "\n  "))
	}
	return b.String()
}

func shortWhy(why string) string {
	if strings.Contains(why, "lacks MULTI") {
		return "server lacks MULTI"
	}
	return why
}

// Annotations returns the faults as porcupine annotations (tag "nemesis"),
// in the history's time base.
func (r *Report) Annotations() []porcupine.Annotation {
	var out []porcupine.Annotation
	for _, f := range r.Faults {
		out = append(out, porcupine.Annotation{Tag: "nemesis", Start: int64(f.At), End: int64(f.At + f.Held),
			Description: f.Nemesis, Details: f.Desc + " " + f.Note, BackgroundColor: "#fde2e2"})
	}
	return out
}

// VisualizeRegister writes porcupine's HTML view of a checked register
// history, with annotations, to path.
func VisualizeRegister(res RegisterResult, annotations []porcupine.Annotation, path string) error {
	info := res.Info
	info.AddAnnotations(annotations)
	return porcupine.VisualizePath(RegisterModel, info, path)
}

// Save writes the report and the histories under dir: report.txt,
// faults.json, register.json (+ register.html, porcupine's view),
// bank.json, set.json.
func (r *Report) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.txt"), []byte(r.String()), 0o644); err != nil {
		return err
	}
	files := map[string]any{"faults.json": r.Faults}
	if r.RegisterResult != nil {
		files["register.json"] = r.RegisterOps
	}
	if r.BankResult != nil {
		files["bank.json"] = map[string]any{"total": r.BankTotal, "counts": r.BankCounts, "reads": r.BankReads, "transfers": r.BankTransfers}
	}
	if r.SetResult != nil {
		files["set.json"] = map[string]any{"attempts": r.SetAttempts, "final": r.SetFinal}
	}
	for name, v := range files {
		b, err := json.MarshalIndent(v, "", " ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	if r.RegisterResult != nil {
		if err := VisualizeRegister(*r.RegisterResult, r.Annotations(), filepath.Join(dir, "register.html")); err != nil {
			return fmt.Errorf("porcupine view: %w", err)
		}
	}
	return nil
}
