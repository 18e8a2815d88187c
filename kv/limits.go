package kv

import "github.com/dbx-kv/dbx/engine"

// What the keyspace can store, as the engine decides it (engine/limits.go):
// the server's configured key and value limits may not exceed these.
const (
	KeyBytesLimit   = engine.KeyBytesLimit
	ValueBytesLimit = engine.ValueBytesLimit
)

// ErrKeyTooLarge and ErrValueTooLarge are the engine's refusals of a key
// or value over those limits, as the keyspace returns them.
var (
	ErrKeyTooLarge   = engine.ErrKeyTooLarge
	ErrValueTooLarge = engine.ErrValueTooLarge
)
