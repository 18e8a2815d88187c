// Package ring computes where dbx's 16384 buckets live: given the members
// of a cluster and their weights it returns, for every bucket, the ordered
// list of nodes that own it.
//
// The package owns the weighted virtual-node ring and nothing else. It is
// pure and deterministic: no I/O, no clocks, no goroutines, no randomness,
// and no iteration over Go maps. The same Config and the same nodes (in any
// order) give the same assignment on every process and every platform,
// which is what lets the Raft leader compute a placement and every node
// check it. It must not know about the network, time, keys or the router;
// key → bucket hashing lives in package router, and turning a change of
// assignment into bucket moves lives in package rebalancer.
//
// # Placement
//
// Each node with weight w is placed on a 64-bit hash ring at
// round(VnodesPerNode × w) points; point i of node id sits at
// Hash64(id ‖ uint64le(i)). The buckets are not hashed: bucket b sits at
// the centre of the b-th of 16384 equal slots of the ring,
// b × 2^64/16384 + 2^63/16384. A bucket's natural owner is the first node
// clockwise from the bucket's point; its owners are the first RF distinct
// nodes clockwise.
//
// Natural consistent hashing is unbalanced even so. Evenly spaced bucket
// points add no noise of their own (hashed ones would), but the node points
// are random: arc lengths vary, and with more points than buckets each
// bucket's owner is still close to a weighted coin toss, so a node's
// natural count is typically off its fair share by about
// 1/sqrt(share × 16384) (18% for a fair share of 30 buckets). dbx
// therefore bounds the load of every node from both sides: node i, whose
// fair share is t = 16384 × w_i / Σw, must own between ceil(t × (1−ε)) and
// floor(t × (1+ε)) primaries (ε = Config.LoadEpsilon; the bounds are widened
// to contain the node's largest-remainder quota, so they are always
// feasible). Among all assignments within the bounds the ring picks the one
// closest to natural consistent hashing: each bucket may only go to one of
// the first few distinct nodes clockwise from its point, at a cost equal to
// the ring distance it walks, and the total cost is minimised (a min-cost
// flow solved by successive shortest paths with Dijkstra and potentials).
// Because the optimum changes only locally when the input changes, adding,
// removing or reweighting one node moves little more than the buckets that
// node gains or loses. Buckets off their natural owner are counted in
// Assignment.Displaced: only those can ever move between two nodes that
// were not part of a change.
//
// Replicas (RF > 1) are the next RF−1 distinct nodes clockwise from the
// bucket's point, skipping the primary; their load is not bounded.
//
// # Usage
//
//	r, err := ring.New(ring.DefaultConfig(), []ring.Node{{ID: "a", Weight: 1}, {ID: "b", Weight: 2}})
//	if err != nil { ... }           // errors.Is(err, ring.ErrBadWeight), ...
//	a := r.Assign()                 // a.Owners[b*a.RF] is bucket b's primary (index into a.Nodes)
//	r2, err := r.WithNode(ring.Node{ID: "c", Weight: 1})
//
// # Caveats
//
// Rings are immutable; WithNode, WithoutNode and WithWeight build a new ring
// and compute its assignment (about 10 ms for 64 nodes; BenchmarkNew). A
// draining node has no points: take it out with WithoutNode, whatever its
// weight.
//
// The movement target (one change moves at most 1.15 × the minimum,
// |Δ share| × 16384) holds over all changes together (1.006–1.012) but not
// for every single change: the bounds move with every node's share, so a
// change shifts a few bound-displaced buckets between uninvolved nodes
// (about 5 per change), and the changed node's own count may already be up
// to ε off its share. When the minimum is a few dozen buckets that passes
// 1.15: 12–35 of 1,000 random changes do, the worst 1.37× (47 buckets
// expected, 65 moved). `make bench-placement` prints the figures.
//
// Changing Hash64, the bucket point function, the cost function or the
// defaults changes every placement: the golden digests in package router's
// tests exist to catch that.
package ring
