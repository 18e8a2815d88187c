//go:build !invariants

package ring

// invariants turns on expensive self-checks (make test builds with
// -tags invariants).
const invariants = false
