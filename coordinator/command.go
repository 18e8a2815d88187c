package coordinator

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/dbx-kv/dbx/ring"
)

// Command is an entry of the metadata log: one of AddMember, RemoveMember,
// SetWeight, SetState, SetPlacement, MarkHasData, the move commands, the
// global snapshot commands (AddSnapshot, DropSnapshots) and the
// replication commands (SetReplicationFactor, ChangeReplicas).
type Command interface {
	kind() commandKind
}

// commandKind is the first byte of an encoded command. Values are part of
// the log format: never renumber them.
type commandKind byte

const (
	kindAddMember    commandKind = 1
	kindRemoveMember commandKind = 2
	kindSetWeight    commandKind = 3
	kindSetState     commandKind = 4
	kindSetPlacement commandKind = 5
	kindMarkHasData  commandKind = 6
	kindStartMove    commandKind = 7
	kindFinishMove   commandKind = 8
	kindCancelMove   commandKind = 9
	kindSetLimits    commandKind = 10
	// Global snapshots.
	kindAddSnapshot   commandKind = 11
	kindDropSnapshots commandKind = 12
	// Replication.
	kindChangeReplicas       commandKind = 13
	kindSetReplicationFactor commandKind = 14
)

// Migration limits.
const (
	// MaxMoveBuckets bounds the buckets of one move.
	MaxMoveBuckets = 1024
	// MaxMoveConcurrency bounds MoveLimits.Concurrency.
	MaxMoveConcurrency = 64
)

// StartMove records that buckets begin moving from From to To. Every bucket
// must be owned by From, be To's in the target placement and not be in
// another move (ErrBadMove otherwise).
type StartMove struct {
	Token   string   `json:"token"`
	From    string   `json:"from"`
	To      string   `json:"to"`
	Buckets []uint16 `json:"buckets"`
}

// FinishMove switches the move's buckets to their new owner (the table's
// epoch + 1) and ends it; Bytes is what the copy moved. The last move of a
// migration makes the target the table. ErrUnknownMove if the move was
// cancelled first: Raft orders the two, exactly one wins.
type FinishMove struct {
	Token string `json:"token"`
	Bytes int64  `json:"bytes"`
}

// CancelMove ends a move without switching; ErrUnknownMove if it finished
// (or was cancelled) first.
type CancelMove struct {
	Token  string `json:"token"`
	Reason string `json:"reason,omitempty"`
}

// SetMoveLimits changes the migration throttle.
type SetMoveLimits struct {
	Limits MoveLimits `json:"limits"`
}

// AddMember adds a node as a joining member (JoinedIndex is the entry's log
// index; the State and JoinedIndex fields of Member are ignored). Adding a
// node that is already a member updates its addresses and keeps its weight
// and state, except that a member that has left becomes joining again.
type AddMember struct {
	Member Member `json:"member"`
}

// RemoveMember deletes a member. It is refused with ErrHasData while the
// cluster holds data and the member owns buckets (set it left instead).
type RemoveMember struct {
	ID string `json:"id"`
}

// SetWeight changes a member's weight; the leader then plans a placement
// (with data, a migration).
type SetWeight struct {
	ID     string  `json:"id"`
	Weight float64 `json:"weight"`
}

// SetState changes a member's state. Any transition is allowed except out of
// StateLeft (add the node again instead). It is accepted whether or not the
// cluster holds data: placement follows only when it may.
type SetState struct {
	ID    string      `json:"id"`
	State MemberState `json:"state"`
}

// SetPlacement commits a new placement table. It is accepted only if Epoch
// is the current epoch + 1, Table decodes (router encoding) with that epoch
// and Inputs — the nodes and weights the table was computed from — are
// exactly the active members and their weights, with the table's nodes
// being their IDs. While the cluster holds data and some bucket's owner
// changes, the table becomes the migration target instead of replacing the
// current one (see the package doc). Build it with Plan.
type SetPlacement struct {
	Epoch  uint64      `json:"epoch"`
	Table  []byte      `json:"table"`
	Inputs []ring.Node `json:"inputs"`
}

// MarkHasData records that some node stores a key. It cannot be undone.
type MarkHasData struct{}

func (AddMember) kind() commandKind     { return kindAddMember }
func (RemoveMember) kind() commandKind  { return kindRemoveMember }
func (SetWeight) kind() commandKind     { return kindSetWeight }
func (SetState) kind() commandKind      { return kindSetState }
func (SetPlacement) kind() commandKind  { return kindSetPlacement }
func (MarkHasData) kind() commandKind   { return kindMarkHasData }
func (StartMove) kind() commandKind     { return kindStartMove }
func (FinishMove) kind() commandKind    { return kindFinishMove }
func (CancelMove) kind() commandKind    { return kindCancelMove }
func (SetMoveLimits) kind() commandKind { return kindSetLimits }

// Encode returns a command's log encoding: its kind byte followed by its
// JSON form.
func Encode(c Command) ([]byte, error) {
	if c == nil {
		return nil, fmt.Errorf("%w: nil command", ErrBadCommand)
	}
	body, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("%w: %T: %w", ErrBadCommand, c, err)
	}
	out := make([]byte, 0, 1+len(body))
	out = append(out, byte(c.kind()))
	out = append(out, body...)
	if len(out) > MaxCommandBytes {
		return nil, fmt.Errorf("%w: %T is %d bytes, more than %d", ErrBadCommand, c, len(out), MaxCommandBytes)
	}
	return out, nil
}

// Decode parses a command encoded by Encode. Unknown kinds, unknown fields
// and trailing data are errors wrapping ErrBadCommand.
func Decode(data []byte) (Command, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrBadCommand)
	}
	if len(data) > MaxCommandBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrBadCommand, len(data), MaxCommandBytes)
	}
	var c Command
	var err error
	switch commandKind(data[0]) {
	case kindAddMember:
		c, err = decodeAs[AddMember](data[1:])
	case kindRemoveMember:
		c, err = decodeAs[RemoveMember](data[1:])
	case kindSetWeight:
		c, err = decodeAs[SetWeight](data[1:])
	case kindSetState:
		c, err = decodeAs[SetState](data[1:])
	case kindSetPlacement:
		c, err = decodeAs[SetPlacement](data[1:])
	case kindMarkHasData:
		c, err = decodeAs[MarkHasData](data[1:])
	case kindStartMove:
		c, err = decodeAs[StartMove](data[1:])
	case kindFinishMove:
		c, err = decodeAs[FinishMove](data[1:])
	case kindCancelMove:
		c, err = decodeAs[CancelMove](data[1:])
	case kindSetLimits:
		c, err = decodeAs[SetMoveLimits](data[1:])
	case kindAddSnapshot:
		c, err = decodeAs[AddSnapshot](data[1:])
	case kindDropSnapshots:
		c, err = decodeAs[DropSnapshots](data[1:])
	case kindChangeReplicas:
		c, err = decodeAs[ChangeReplicas](data[1:])
	case kindSetReplicationFactor:
		c, err = decodeAs[SetReplicationFactor](data[1:])
	default:
		return nil, fmt.Errorf("%w: unknown kind %d", ErrBadCommand, data[0])
	}
	if err != nil {
		return nil, fmt.Errorf("%w: kind %d: %w", ErrBadCommand, data[0], err)
	}
	return c, nil
}

func decodeAs[T Command](body []byte) (T, error) {
	var v T
	err := decodeStrict(body, &v)
	return v, err
}

// decodeStrict decodes exactly one JSON value with no unknown fields.
func decodeStrict(body []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return fmt.Errorf("trailing data")
	}
	// d.More is false at EOF and before a closing bracket; reject any
	// non-space byte left over.
	rest := body[d.InputOffset():]
	if len(bytes.TrimSpace(rest)) != 0 {
		return fmt.Errorf("trailing data")
	}
	return nil
}
