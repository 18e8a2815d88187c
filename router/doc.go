// Package router maps keys to buckets and buckets to owners.
//
// It owns three things:
//
//   - the key → bucket function: CRC16 (XMODEM, as Redis Cluster) of the key,
//     or of its first non-empty {hash tag}, modulo NumBuckets. It matches
//     Redis Cluster's CLUSTER KEYSLOT for every key, so cluster-aware Redis
//     clients route to the right node by themselves;
//   - the placement Table: an immutable, epoch-stamped bucket → owners map,
//     with a canonical binary encoding (what the Raft log carries) and a
//     digest;
//   - the Holder, which publishes the current Table to readers through an
//     atomic pointer: readers never lock and never block.
//
// It must not block, do I/O, or decide placement: tables are computed by
// package ring (see FromRing and FromRingPrev) or decoded from the log, and
// turning a change of table into bucket moves is package rebalancer's job.
//
// A cluster's first table comes from FromRing; every later one from
// FromRingPrev, from the table in force, so that a change of one node moves
// about what that node gains or loses and almost nothing between other
// nodes. Such tables depend on the history of changes, not only on the
// members: the table itself, as the Raft log carries it, is the placement.
//
// # Usage
//
//	t, err := router.FromRing(epoch, r)   // first table; or t.UnmarshalBinary(entry)
//	t2, err := router.FromRingPrev(epoch+1, r2, t) // after a change: from the table in force
//	var h router.Holder
//	err = h.Store(t)                      // refuses an older epoch
//	owner := h.Load().Owner(key)          // lock-free, allocation-free
//
// # Caveats
//
// A *Table is read-only once built; slices it returns from Owners are
// shared and must not be modified. UnmarshalBinary writes its receiver and
// must only be called on a Table nobody else uses yet.
package router
