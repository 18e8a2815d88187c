// Package failpoint names the places where a fault test may have a dbx-node
// process kill itself (SIGKILL), and counts the hits: "name[:n],..." kills
// at the n-th time (default 1) name is reached. Only fault tests set them
// (dbx-node serve --failpoints, DBX_FAILPOINTS); with none set, Hit costs a
// nil check.
//
// The package only decides when: the caller (node) does the killing, so
// this package holds no process state and is testable.
package failpoint

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Names are the places a fault test can stop a node at.
var Names = []string{
	"coord-before-decide", "coord-before-commit", "holder-after-decide-write", // 2PC coordinator and holder
	"part-after-prepare", "part-before-apply", // 2PC participant
	"mig-target-copy", "mig-source-fence", // bucket moves
	"snap-leader-before-commit", // global snapshots
}

// hitsMax bounds the n of "name:n".
const hitsMax = 1 << 20

// Set is the armed failpoints of one process. A nil *Set has none. It is
// safe for concurrent use.
type Set struct {
	mu   sync.Mutex
	left map[string]int
}

// Parse reads spec ("name[:n],..."; empty: nil, no failpoints), reporting
// every unknown name and bad count at once.
func Parse(spec string) (*Set, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, nil
	}
	s := &Set{left: map[string]int{}}
	var errs []error
	for _, f := range strings.Split(spec, ",") {
		name, n, hasN := strings.Cut(strings.TrimSpace(f), ":")
		c := 1
		if hasN {
			var err error
			if c, err = strconv.Atoi(n); err != nil || c < 1 || c > hitsMax {
				errs = append(errs, fmt.Errorf("failpoint %q: hit count %q must be in [1, %d]", name, n, hitsMax))
				continue
			}
		}
		if !slices.Contains(Names, name) {
			errs = append(errs, fmt.Errorf("failpoint %q unknown (known: %s)", name, strings.Join(Names, ", ")))
			continue
		}
		s.left[name] = c
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// Hit counts one pass at name and reports whether it is the armed one (the
// process must stop now). Later passes report false.
func (s *Set) Hit(name string) bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.left[name]
	if !ok || c == 0 {
		return false
	}
	s.left[name] = c - 1
	return c == 1
}
