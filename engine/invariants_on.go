//go:build invariants || race

package engine

const invariants = true
