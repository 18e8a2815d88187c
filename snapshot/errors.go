package snapshot

import (
	"errors"

	"github.com/dbx-kv/dbx/transport"
)

// The messages and the transport code keep the names they had in node/,
// so operators' scripts and mixed-version RPCs see no change.
var (
	// ErrFailed reports a global snapshot take that failed or was refused;
	// nothing was listed.
	ErrFailed = errors.New("node: snapshot failed")
	// ErrRestoreRefused reports a restore that was not done; the node's
	// data is untouched.
	ErrRestoreRefused = errors.New("node: restore refused")
)

func init() { transport.RegisterError("node.snapshot", ErrFailed) }
