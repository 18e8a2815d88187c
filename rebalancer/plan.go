package rebalancer

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dbx-kv/dbx/router"
)

// ErrNoTable reports a nil table given to Plan.
var ErrNoTable = errors.New("rebalancer: nil table")

// BucketRange is the buckets Lo..Hi, both inclusive.
type BucketRange struct {
	Lo, Hi uint16
}

// Len returns the number of buckets in r.
func (r BucketRange) Len() int { return int(r.Hi) - int(r.Lo) + 1 }

func (r BucketRange) String() string {
	if r.Lo == r.Hi {
		return fmt.Sprint(r.Lo)
	}
	return fmt.Sprintf("%d-%d", r.Lo, r.Hi)
}

// Task is every bucket whose primary moves from one node to another.
type Task struct {
	From, To string
	// Ranges are ascending and neither overlap nor touch.
	Ranges []BucketRange
	// Buckets is the number of buckets in Ranges.
	Buckets int
}

// Migration is the difference between two tables.
type Migration struct {
	FromEpoch, ToEpoch uint64
	// Tasks are sorted by From, then To.
	Tasks []Task
	// Moved is the number of buckets whose primary changes (Σ Tasks[i].Buckets).
	Moved int
	// Fraction is Moved / NumBuckets.
	Fraction float64
	// ReplicaChanged counts buckets whose primary stays but whose owner
	// list changes.
	ReplicaChanged int
}

// Plan lists the bucket moves that turn prev's placement into next's.
func Plan(prev, next *router.Table) (Migration, error) {
	if prev == nil || next == nil {
		return Migration{}, ErrNoTable
	}
	m := Migration{FromEpoch: prev.Epoch(), ToEpoch: next.Epoch()}
	type pair struct{ from, to string }
	tasks := map[pair]*Task{}
	for b := 0; b < router.NumBuckets; b++ {
		from, to := prev.OwnerOfBucket(uint16(b)), next.OwnerOfBucket(uint16(b))
		if from == to {
			if !slices.Equal(prev.Owners(uint16(b)), next.Owners(uint16(b))) {
				m.ReplicaChanged++
			}
			continue
		}
		t := tasks[pair{from, to}]
		if t == nil {
			t = &Task{From: from, To: to}
			tasks[pair{from, to}] = t
		}
		if n := len(t.Ranges); n > 0 && int(t.Ranges[n-1].Hi) == b-1 {
			t.Ranges[n-1].Hi = uint16(b)
		} else {
			t.Ranges = append(t.Ranges, BucketRange{uint16(b), uint16(b)})
		}
		t.Buckets++
		m.Moved++
	}
	m.Tasks = make([]Task, 0, len(tasks))
	for _, t := range tasks {
		m.Tasks = append(m.Tasks, *t)
	}
	slices.SortFunc(m.Tasks, func(a, b Task) int {
		return cmp.Or(strings.Compare(a.From, b.From), strings.Compare(a.To, b.To))
	})
	m.Fraction = float64(m.Moved) / router.NumBuckets
	return m, nil
}

// String summarises the migration, one task per line.
func (m Migration) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "epoch %d → %d: %d buckets move (%.2f%%), %d replica-only changes", m.FromEpoch, m.ToEpoch, m.Moved, 100*m.Fraction, m.ReplicaChanged)
	for _, t := range m.Tasks {
		fmt.Fprintf(&b, "\n  %s → %s: %d buckets in %d ranges", t.From, t.To, t.Buckets, len(t.Ranges))
	}
	return b.String()
}
