package snapshot

import "errors"

// ErrFailed reports a global snapshot take that failed or was refused;
// nothing was listed. It keeps the text it had in node/ ("node: snapshot
// failed"); node registers it on the wire as "node.snapshot".
var ErrFailed = errors.New("node: snapshot failed")
