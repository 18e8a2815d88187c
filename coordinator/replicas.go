package coordinator

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/dbx-kv/dbx/replica"
	"github.com/dbx-kv/dbx/router"
)

// Replication limits.
const (
	// MaxReplicationFactor is the largest replication factor.
	MaxReplicationFactor = 7
	// DefaultReplicationFactor is the replication factor of a cluster
	// bootstrapped without one (and of states that predate it).
	DefaultReplicationFactor = 1
	// MaxReplicaChanges bounds the changes of one ChangeReplicas entry:
	// that many changes of MaxReplicationFactor owners with 32-byte node
	// IDs fit in MaxCommandBytes. A driver splits larger proposals.
	MaxReplicaChanges = 4096
)

// *State is the replication state machines' view of the metadata.
var _ replica.View = (*State)(nil)

// epochChunk is the number of bucket epochs copied together on write.
const epochChunk = router.NumBuckets / 64

// replicas is the per-bucket replication metadata: every bucket's
// configuration epoch and, for the few buckets whose configuration is not
// the one derived from the table, its primary and in-sync set. It is
// immutable once built and shared between States; a command that changes
// it builds a new one (copy on write), so cloning a State costs nothing
// for it. The epochs are 64 chunks, themselves copied on write, so a
// command that changes a few buckets copies 64 pointers and their chunks,
// not every epoch.
type replicas struct {
	// chunks hold every bucket's epoch, epochChunk buckets each.
	chunks [router.NumBuckets / epochChunk]*[epochChunk]replica.Epoch
	// owned marks the chunks this copy made its own (only while a
	// command builds it; published replicas are never written).
	owned uint64
	// over holds the explicit configurations that differ from the
	// derived one; Owners always come from the table.
	over map[replica.Bucket]override
}

// override is an explicit configuration's primary and in-sync set.
type override struct {
	primary replica.NodeID
	set     []replica.NodeID // sorted
}

// newReplicas returns the replica metadata of a first table: every bucket
// at epoch 1 with its derived configuration.
func newReplicas() *replicas {
	one := new([epochChunk]replica.Epoch)
	for i := range one {
		one[i] = 1
	}
	r := &replicas{over: map[replica.Bucket]override{}}
	for i := range r.chunks {
		r.chunks[i] = one // shared: copied on the first write
	}
	return r
}

// copy returns a copy to modify; its chunks are shared until written.
func (r *replicas) copy() *replicas {
	n := &replicas{chunks: r.chunks, over: make(map[replica.Bucket]override, len(r.over))}
	for b, o := range r.over {
		n.over[b] = o
	}
	return n
}

func (r *replicas) epoch(b replica.Bucket) replica.Epoch {
	return r.chunks[b/epochChunk][b%epochChunk]
}

// setEpoch sets b's epoch in a copy being built.
func (r *replicas) setEpoch(b replica.Bucket, e replica.Epoch) {
	i := b / epochChunk
	if r.owned&(1<<i) == 0 {
		c := *r.chunks[i]
		r.chunks[i] = &c
		r.owned |= 1 << i
	}
	r.chunks[i][b%epochChunk] = e
}

// ReplicationFactor returns the cluster's replication factor, set when it
// was bootstrapped (SetReplicationFactor). The leader builds placement
// tables with that many owners per bucket (as many as there are active
// members while there are fewer: PlacementRF).
func (s *State) ReplicationFactor() int { return s.rf }

// PlacementRF is the number of owners per bucket a new placement gets:
// the replication factor, or the active members if there are fewer.
func (s *State) PlacementRF() int {
	return max(1, min(s.rf, len(s.ActiveNodes())))
}

// UnderReplicated counts the buckets whose in-sync set is smaller than
// the replication factor (0 before the first placement).
func (s *State) UnderReplicated() int {
	if s.table == nil {
		return 0
	}
	n := 0
	for b := range router.NumBuckets {
		set := len(s.table.Owners(uint16(b)))
		if o, ok := s.repl.over[replica.Bucket(b)]; ok {
			set = len(o.set)
		}
		if set < s.rf {
			n++
		}
	}
	return n
}

// PrimaryOverrides returns the buckets whose primary is not the table's
// first owner (a replica promoted by a failover), bucket → primary; nil
// when there are none. The map is the caller's.
func (s *State) PrimaryOverrides() map[uint16]string {
	if s.table == nil {
		return nil
	}
	var out map[uint16]string
	for b, o := range s.repl.over {
		if string(o.primary) != s.table.OwnerOfBucket(uint16(b)) {
			if out == nil {
				out = map[uint16]string{}
			}
			out[uint16(b)] = string(o.primary)
		}
	}
	return out
}

// Buckets lists the buckets that have a Membership, ascending: every
// bucket once a placement exists, none before.
func (s *State) Buckets() []replica.Bucket {
	if s.table == nil {
		return nil
	}
	out := make([]replica.Bucket, router.NumBuckets)
	for i := range out {
		out[i] = replica.Bucket(i)
	}
	return out
}

// Membership returns bucket b's replica configuration in force: its
// epoch, its primary, its in-sync set and its owners (the table's, sorted).
// Unless a ChangeReplicas set it otherwise, the primary is the table's
// first owner and the set is every owner — with RF 1, {owner}. The epoch
// is 1 at the first placement and grows by one with every committed
// change of the bucket's owners (a move's switch, a placement change) and
// every accepted Change; a change of owners also drops an explicit
// configuration. ok is false before the first placement and for b out of
// range. The slices are the caller's.
func (s *State) Membership(b replica.Bucket) (replica.Membership, bool) {
	if s.table == nil || int(b) >= router.NumBuckets {
		return replica.Membership{}, false
	}
	owners := s.table.Owners(uint16(b))
	n := len(owners)
	ids := make([]replica.NodeID, 2*n) // one allocation for Owners and Set
	m := replica.Membership{Bucket: b, Epoch: s.repl.epoch(b), Primary: replica.NodeID(owners[0]), Owners: ids[:n:n]}
	for i, o := range owners {
		m.Owners[i] = replica.NodeID(o)
	}
	slices.Sort(m.Owners)
	if o, ok := s.repl.over[b]; ok {
		m.Primary = o.primary
		m.Set = append(ids[n:n:2*n], o.set...)
	} else {
		m.Set = append(ids[n:n:2*n], m.Owners...)
	}
	return m, true
}

// BucketEpoch returns bucket b's configuration epoch (Membership's,
// without building it).
func (s *State) BucketEpoch(b replica.Bucket) (replica.Epoch, bool) {
	if s.table == nil || int(b) >= router.NumBuckets {
		return 0, false
	}
	return s.repl.epoch(b), true
}

// setTable makes t the table. On the first table every bucket starts at
// epoch 1; after that, every bucket whose owners (or their order) change
// goes to its next epoch with its derived configuration.
func (s *State) setTable(t *router.Table) {
	old := s.table
	s.table = t
	if old == nil || s.repl == nil {
		s.repl = newReplicas()
		return
	}
	var r *replicas
	for b := range router.NumBuckets {
		if slices.Equal(old.Owners(uint16(b)), t.Owners(uint16(b))) {
			continue
		}
		if r == nil {
			r = s.repl.copy()
		}
		r.setEpoch(replica.Bucket(b), r.epoch(replica.Bucket(b))+1)
		delete(r.over, replica.Bucket(b))
	}
	if r != nil {
		s.repl = r
	}
}

// moveBuckets makes t, which differs from the table only in the owner of
// buckets (a move's switch), the table: those buckets go to their next
// epoch with their derived configuration.
func (s *State) moveBuckets(t *router.Table, buckets []uint16) {
	r := s.repl.copy()
	for _, b := range buckets {
		r.setEpoch(replica.Bucket(b), r.epoch(replica.Bucket(b))+1)
		delete(r.over, replica.Bucket(b))
	}
	s.table, s.repl = t, r
}

// ChangeReplicas commits replica configuration changes (replica's
// ProposeChange) as one entry. Each change is a compare-and-set on its
// bucket's epoch, judged on its own and in order (a later change of the
// same bucket sees the earlier one): it applies only if the bucket's
// epoch is still From, To.Epoch is From+1, To.Owners are the bucket's
// owners in the table (sorted), To.Set is sorted, distinct, a subset of
// them and holds To.Primary, and every node named is a member. A refused
// change (ErrStaleMembership, ErrBadMembership) leaves its bucket alone
// and the rest of the entry still applies; Result.Changes says which were
// refused, and the command is rejected (Result.Err: the first refusal)
// only if every change was. An entry of no changes or more than
// MaxReplicaChanges is rejected whole (ErrBadCommand).
type ChangeReplicas struct {
	Changes []replica.Change
}

// SetReplicationFactor records the cluster's replication factor. It is
// accepted only before the first placement (it is set at bootstrap) or
// when it changes nothing, with Factor in 1..MaxReplicationFactor.
type SetReplicationFactor struct {
	Factor int `json:"factor"`
}

func (ChangeReplicas) kind() commandKind       { return kindChangeReplicas }
func (SetReplicationFactor) kind() commandKind { return kindSetReplicationFactor }

// changeJSON is a Change on the wire: flat, with snake-case names like
// every other command.
type changeJSON struct {
	Bucket  uint16   `json:"bucket"`
	From    uint64   `json:"from"`
	Epoch   uint64   `json:"epoch"`
	Primary string   `json:"primary"`
	Set     []string `json:"set"`
	Owners  []string `json:"owners"`
}

type changeReplicasJSON struct {
	Changes []changeJSON `json:"changes"`
}

// MarshalJSON encodes the command in its log format.
func (c ChangeReplicas) MarshalJSON() ([]byte, error) {
	w := changeReplicasJSON{Changes: make([]changeJSON, len(c.Changes))}
	for i, ch := range c.Changes {
		w.Changes[i] = changeJSON{
			Bucket: uint16(ch.To.Bucket), From: uint64(ch.From), Epoch: uint64(ch.To.Epoch),
			Primary: string(ch.To.Primary), Set: idStrings(ch.To.Set), Owners: idStrings(ch.To.Owners),
		}
	}
	return json.Marshal(w)
}

// UnmarshalJSON decodes the log format strictly (no unknown fields).
func (c *ChangeReplicas) UnmarshalJSON(data []byte) error {
	var w changeReplicasJSON
	if err := decodeStrict(data, &w); err != nil {
		return err
	}
	c.Changes = make([]replica.Change, len(w.Changes))
	for i, ch := range w.Changes {
		c.Changes[i] = replica.Change{From: replica.Epoch(ch.From), To: replica.Membership{
			Bucket: replica.Bucket(ch.Bucket), Epoch: replica.Epoch(ch.Epoch), Primary: replica.NodeID(ch.Primary),
			Set: nodeIDs(ch.Set), Owners: nodeIDs(ch.Owners),
		}}
	}
	return nil
}

func idStrings(ids []replica.NodeID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = string(id)
	}
	return out
}

func nodeIDs(ss []string) []replica.NodeID {
	out := make([]replica.NodeID, len(ss))
	for i, s := range ss {
		out[i] = replica.NodeID(s)
	}
	return out
}

func (s *State) setReplicationFactor(n int) error {
	if n < 1 || n > MaxReplicationFactor {
		return fmt.Errorf("%w: replication factor %d, want 1 to %d", ErrBadCommand, n, MaxReplicationFactor)
	}
	if n == s.rf {
		return nil
	}
	if s.table != nil {
		return fmt.Errorf("%w: replication factor %d: it is set at bootstrap, before the first placement (it is %d)", ErrBadCommand, n, s.rf)
	}
	s.rf = n
	return nil
}

// changeReplicas applies c to s (a fresh clone) and returns each change's
// refusal (nil: applied) and, if none applied, the command's error.
func (s *State) changeReplicas(c ChangeReplicas) ([]error, error) {
	if len(c.Changes) == 0 || len(c.Changes) > MaxReplicaChanges {
		return nil, fmt.Errorf("%w: %d replica changes, want 1 to %d", ErrBadCommand, len(c.Changes), MaxReplicaChanges)
	}
	if s.table == nil {
		return nil, fmt.Errorf("%w: no placement yet", ErrBadMembership)
	}
	refused := make([]error, len(c.Changes))
	var r *replicas // s.repl's copy, made at the first accepted change
	applied := 0
	for i, ch := range c.Changes {
		cur := s.repl
		if r != nil {
			cur = r
		}
		if err := s.checkChange(cur, ch); err != nil {
			refused[i] = fmt.Errorf("change %d: %w", i, err)
			continue
		}
		if r == nil {
			r = s.repl.copy()
		}
		b := ch.To.Bucket
		r.setEpoch(b, ch.To.Epoch)
		if ch.To.Primary == replica.NodeID(s.table.OwnerOfBucket(uint16(b))) && slices.Equal(ch.To.Set, ch.To.Owners) {
			delete(r.over, b) // the derived configuration
		} else {
			r.over[b] = override{primary: ch.To.Primary, set: slices.Clone(ch.To.Set)}
		}
		applied++
	}
	if applied == 0 {
		return refused, refused[0]
	}
	s.repl = r
	return refused, nil
}

// checkChange judges one change against the replica metadata cur.
func (s *State) checkChange(cur *replicas, ch replica.Change) error {
	b := ch.To.Bucket
	if int(b) >= router.NumBuckets {
		return fmt.Errorf("%w: bucket %d out of range", ErrBadMembership, b)
	}
	if e := cur.epoch(b); ch.From != e {
		return fmt.Errorf("%w: bucket %d is at epoch %d, not %d", ErrStaleMembership, b, e, ch.From)
	}
	if ch.To.Epoch != ch.From+1 || ch.To.Epoch <= ch.From {
		return fmt.Errorf("%w: bucket %d: epoch %d, want %d+1", ErrBadMembership, b, ch.To.Epoch, ch.From)
	}
	owners := s.table.Owners(uint16(b))
	want := make([]replica.NodeID, len(owners))
	for i, o := range owners {
		want[i] = replica.NodeID(o)
	}
	slices.Sort(want)
	if !slices.Equal(ch.To.Owners, want) {
		return fmt.Errorf("%w: bucket %d: owners %s, the placement's are %s", ErrBadMembership, b, idsString(ch.To.Owners), idsString(want))
	}
	return s.checkSet(b, ch.To.Primary, ch.To.Set, want)
}

// checkSet checks an in-sync set against the bucket's sorted owners.
func (s *State) checkSet(b replica.Bucket, primary replica.NodeID, set, owners []replica.NodeID) error {
	if len(set) == 0 {
		return fmt.Errorf("%w: bucket %d: empty set", ErrBadMembership, b)
	}
	for i, id := range set {
		if i > 0 && set[i-1] >= id {
			return fmt.Errorf("%w: bucket %d: set %s not sorted or repeated", ErrBadMembership, b, idsString(set))
		}
		if _, ok := slices.BinarySearch(owners, id); !ok {
			return fmt.Errorf("%w: bucket %d: set member %s is not an owner (%s)", ErrBadMembership, b, truncate(string(id)), idsString(owners))
		}
		if _, ok := s.members[string(id)]; !ok {
			return fmt.Errorf("%w: bucket %d: set member %s: %w", ErrBadMembership, b, truncate(string(id)), ErrUnknownMember)
		}
	}
	if _, ok := slices.BinarySearch(set, primary); !ok {
		return fmt.Errorf("%w: bucket %d: primary %s is not in the set %s", ErrBadMembership, b, truncate(string(primary)), idsString(set))
	}
	return nil
}

func idsString(ids []replica.NodeID) string {
	parts := make([]string, 0, min(len(ids), 9))
	for i, id := range ids {
		if i == 8 {
			parts = append(parts, fmt.Sprintf("...(%d)", len(ids)))
			break
		}
		parts = append(parts, truncate(string(id)))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// Snapshot form of the replica metadata.

// epochRun is a run of consecutive buckets at one epoch.
type epochRun struct {
	Epoch   uint64 `json:"epoch"`
	Buckets int    `json:"buckets"`
}

// replicaSetJSON is an explicit configuration in a snapshot.
type replicaSetJSON struct {
	Bucket  uint16   `json:"bucket"`
	Primary string   `json:"primary"`
	Set     []string `json:"set"`
}

// encodeReplicas returns the bucket epochs as runs and the explicit
// configurations by bucket (nil, nil before the first placement).
func (s *State) encodeReplicas() ([]epochRun, []replicaSetJSON) {
	if s.table == nil {
		return nil, nil
	}
	var runs []epochRun
	for b := range replica.Bucket(router.NumBuckets) {
		e := s.repl.epoch(b)
		if n := len(runs); n > 0 && runs[n-1].Epoch == uint64(e) {
			runs[n-1].Buckets++
			continue
		}
		runs = append(runs, epochRun{Epoch: uint64(e), Buckets: 1})
	}
	var sets []replicaSetJSON
	for b, o := range s.repl.over {
		sets = append(sets, replicaSetJSON{Bucket: uint16(b), Primary: string(o.primary), Set: idStrings(o.set)})
	}
	slices.SortFunc(sets, func(a, b replicaSetJSON) int { return int(a.Bucket) - int(b.Bucket) })
	return runs, sets
}

// decodeReplicas restores the replica metadata of s, whose table and
// members are set. A snapshot without it (written before it existed)
// gives every bucket epoch 1 and its derived configuration.
func (s *State) decodeReplicas(runs []epochRun, sets []replicaSetJSON) error {
	if s.table == nil {
		if len(runs) != 0 || len(sets) != 0 {
			return fmt.Errorf("%w: replica metadata without a table", ErrBadSnapshot)
		}
		return nil
	}
	r := newReplicas()
	s.repl = r
	if len(runs) > 0 {
		i := 0
		for _, run := range runs {
			if run.Epoch == 0 || run.Buckets < 1 || run.Buckets > router.NumBuckets-i {
				return fmt.Errorf("%w: bucket epoch run %d×%d at bucket %d", ErrBadSnapshot, run.Buckets, run.Epoch, i)
			}
			for range run.Buckets {
				r.setEpoch(replica.Bucket(i), replica.Epoch(run.Epoch))
				i++
			}
		}
		if i != router.NumBuckets {
			return fmt.Errorf("%w: bucket epochs for %d buckets, want %d", ErrBadSnapshot, i, router.NumBuckets)
		}
	}
	for i, rs := range sets {
		b := replica.Bucket(rs.Bucket)
		if int(b) >= router.NumBuckets || i > 0 && sets[i-1].Bucket >= rs.Bucket {
			return fmt.Errorf("%w: replica set of bucket %d out of range, unsorted or repeated", ErrBadSnapshot, b)
		}
		m, _ := s.Membership(b) // the derived one: b is not in r.over yet
		set := nodeIDs(rs.Set)
		if err := s.checkSet(b, replica.NodeID(rs.Primary), set, m.Owners); err != nil {
			return fmt.Errorf("%w: %w", ErrBadSnapshot, err)
		}
		if replica.NodeID(rs.Primary) == m.Primary && slices.Equal(set, m.Set) {
			return fmt.Errorf("%w: bucket %d: explicit replica set is the derived one", ErrBadSnapshot, b)
		}
		r.over[b] = override{primary: replica.NodeID(rs.Primary), set: set}
	}
	return nil
}
