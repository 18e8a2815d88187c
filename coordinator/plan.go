package coordinator

import (
	"fmt"

	"github.com/dbx-kv/dbx/ring"
	"github.com/dbx-kv/dbx/router"
)

// Plan computes the placement s should have: the table of a ring (policy
// cfg) over s's active members and weights, computed from the current
// table (ring.AssignFrom) so a change moves as few buckets as the load
// bounds allow, at epoch s.Epoch()+1. It returns
// ok = false and no error when the current table was already computed from
// those members and weights, or when no member is active. When the cluster
// holds data the returned placement becomes the target the migration moves
// buckets towards (see StartMove, FinishMove).
// Errors from the ring (ring.ErrRFTooLarge while there are fewer active
// members than cfg.RF, ...) are returned wrapped; they depend only on s and
// cfg, so retrying without a change of state gives the same error.
//
// Plan is pure but costly (a ring build, milliseconds to tens of
// milliseconds): the leader runs it, never the request path. Apply the
// returned command; it is rejected if the state changed in between.
func Plan(s *State, cfg ring.Config) (cmd SetPlacement, ok bool, err error) {
	active := s.ActiveNodes()
	if len(active) == 0 || s.PlacementCurrent() {
		return SetPlacement{}, false, nil
	}
	r, err := ring.New(cfg, active)
	if err != nil {
		return SetPlacement{}, false, fmt.Errorf("coordinator: plan: %w", err)
	}
	epoch := s.Epoch() + 1
	// Start from the current table (nil for the first one): only the
	// buckets the new load bounds force to move change owner.
	prev := s.table
	if s.target != nil {
		prev = s.target // the migration in progress is the history to keep
	}
	t, err := router.FromRingPrev(epoch, r, prev)
	if err != nil {
		return SetPlacement{}, false, fmt.Errorf("coordinator: plan: %w", err)
	}
	b, err := t.MarshalBinary()
	if err != nil {
		return SetPlacement{}, false, fmt.Errorf("coordinator: plan: %w", err)
	}
	return SetPlacement{Epoch: epoch, Table: b, Inputs: active}, true, nil
}
