//go:build invariants || race

package segment

// invariants enables expensive self-checks (build tag invariants, or -race).
const invariants = true
