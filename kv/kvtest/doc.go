// Package kvtest is the keyspace's test kit: Run, the conformance suite
// every keyspace passes (strings and expiry, atomic INCR, WATCH versions
// and Exec), and Mem, kv.Engine's in-memory twin, which passes the same
// suite (as hashicorp/raft's InmemTransport and testing/fstest.TestFS).
//
//	func TestEngine(t *testing.T) {
//		kvtest.Run(t, func(t *testing.T, now func() time.Time) kvtest.Keyspace {
//			return kv.New(openStore(t, now), now)
//		})
//	}
//
// Tests of the code above the keyspace (the server, the benchmark tools)
// serve Mem where an engine would only cost time.
//
// # What it must not do
//
// Be imported by production code, or import anything above kv (the
// server's own tests use it, so it must never import the server). Mem
// models the results, not the engine's locks, durability or checks: the
// per-key options of kv.New are tested against Engine in package kv.
package kvtest
