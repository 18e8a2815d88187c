package chaos

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// SetAttempt is one insert of a unique key.
type SetAttempt struct {
	Client  int     `json:"client"`
	Node    string  `json:"node"`
	Key     string  `json:"key"`
	Value   string  `json:"value"`
	Outcome Outcome `json:"outcome"`
	Call    int64   `json:"call"`
	Return  int64   `json:"return"`
	Err     string  `json:"err,omitempty"`
}

// SetFinal is what the final read found: every key of the workload's
// prefix that is present (from reading every attempted key and scanning
// every node), with its value, and the attempted keys that could not be
// read at all.
type SetFinal struct {
	Present    map[string]string `json:"present"`
	Unreadable []string          `json:"unreadable,omitempty"`
}

// SetResult is the verdict of CheckSet.
type SetResult struct {
	Attempted, Acked, Failed, Unknown int
	// UnknownPresent counts unknown inserts found at the end (they took
	// effect; the others did not, and both are fine).
	UnknownPresent int
	// Lost: acknowledged but missing. Unexpected: present but never
	// attempted, or present with a value no client wrote. FailedPresent:
	// the client was told the insert certainly failed, yet it is there.
	// Unreadable: attempted keys the final read could not read.
	Lost, Unexpected, FailedPresent, Unreadable []string
}

// OK reports whether nothing was lost, nothing unexpected appeared, no
// definite failure took effect and every key could be read.
func (r SetResult) OK() bool {
	return len(r.Lost)+len(r.Unexpected)+len(r.FailedPresent)+len(r.Unreadable) == 0
}

func (r SetResult) String() string {
	s := fmt.Sprintf("lost %d, unexpected %d, failed-but-present %d, unreadable %d (%d attempted: %d acknowledged, %d failed, %d unknown of which %d present)",
		len(r.Lost), len(r.Unexpected), len(r.FailedPresent), len(r.Unreadable), r.Attempted, r.Acked, r.Failed, r.Unknown, r.UnknownPresent)
	for _, l := range []struct {
		name string
		keys []string
	}{{"lost", r.Lost}, {"unexpected", r.Unexpected}, {"failed-but-present", r.FailedPresent}, {"unreadable", r.Unreadable}} {
		if len(l.keys) > 0 {
			s += fmt.Sprintf("\n    %s: %s", l.name, strings.Join(firstN(l.keys, 20), " "))
		}
	}
	return s
}

// CheckSet compares the inserts with what the final read found.
func CheckSet(attempts []SetAttempt, final SetFinal) SetResult {
	var r SetResult
	byKey := make(map[string]SetAttempt, len(attempts))
	for _, a := range attempts {
		byKey[a.Key] = a
		r.Attempted++
		switch a.Outcome {
		case OK:
			r.Acked++
		case Failed:
			r.Failed++
		default:
			r.Unknown++
		}
	}
	unreadable := map[string]bool{}
	for _, k := range final.Unreadable {
		unreadable[k] = true
		r.Unreadable = append(r.Unreadable, k)
	}
	for _, a := range attempts {
		if unreadable[a.Key] {
			continue
		}
		v, present := final.Present[a.Key]
		switch {
		case present && v != a.Value:
			r.Unexpected = append(r.Unexpected, fmt.Sprintf("%s=%q(wrote %q)", a.Key, v, a.Value))
		case a.Outcome == OK && !present:
			r.Lost = append(r.Lost, a.Key)
		case a.Outcome == Failed && present:
			r.FailedPresent = append(r.FailedPresent, a.Key)
		case a.Outcome == Unknown && present:
			r.UnknownPresent++
		}
	}
	for k, v := range final.Present {
		if _, ok := byKey[k]; !ok {
			r.Unexpected = append(r.Unexpected, fmt.Sprintf("%s=%q(never written)", k, v))
		}
	}
	for _, l := range [][]string{r.Lost, r.Unexpected, r.FailedPresent, r.Unreadable} {
		slices.Sort(l)
	}
	return r
}

func firstN(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(slices.Clone(s[:n]), fmt.Sprintf("... (%d more)", len(s)-n))
}

// nsString formats nanoseconds since the run started as seconds.
func nsString(ns int64) string {
	return (time.Duration(ns)).Round(time.Millisecond).String()
}
