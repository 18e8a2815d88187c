package archive

import "errors"

// ErrRestoreRefused reports a restore that was not done; the node's data
// is untouched. It keeps the text it had in node/.
var ErrRestoreRefused = errors.New("node: restore refused")
