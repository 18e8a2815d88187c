package server

import (
	"context"
	"net"

	"github.com/dbx-kv/dbx/kv"
	"github.com/dbx-kv/dbx/router"
)

// Backend is what the RESP server needs from a node: the data operations
// behind the commands, and the cluster's placement for the CLUSTER commands.
// The backend decides whether a key is served locally or forwarded to its
// owner (or answered with a *MovedError); the server only translates RESP to
// calls and errors to Redis error replies.
//
// Concurrency and lifetime rules:
//
//   - Every method may be called from any number of goroutines at once.
//   - Every ctx-taking method must return soon after ctx ends (the server
//     bounds each request by Config.RequestTimeout and cancels on Close); a
//     backend that ignores ctx can hang the client's connection (only that
//     one: other connections keep being served).
//   - Key, value and pattern slices passed in are only valid during the call
//     (they point into the connection's read buffer): copy what you keep.
//   - Slices returned are written to the client and dropped; the server never
//     modifies them, and the backend must not modify them after returning.
//   - Times are absolute Unix milliseconds; 0 means "no expiry". An expired
//     key must be invisible to every method at once.
//   - Multi-key methods (Del, Exists, MGet, MSet) receive every key of the
//     command, whichever nodes own them: fanning out (and, for MSet and Del,
//     committing atomically across nodes) is the backend's job.
type Backend interface {
	// Get returns key's value and expiry, or ErrNotFound.
	Get(ctx context.Context, key []byte) (value []byte, expireAtMs int64, err error)
	// Set writes key under opt's conditions, atomically with respect to
	// every other write of key.
	Set(ctx context.Context, key, value []byte, opt SetOptions) (SetResult, error)
	// Del removes keys and returns how many existed (a key named twice counts once).
	Del(ctx context.Context, keys ...[]byte) (int, error)
	// Exists returns how many of keys exist, counting a key named twice twice.
	Exists(ctx context.Context, keys ...[]byte) (int, error)
	// MGet returns one entry per key, nil for a missing key.
	MGet(ctx context.Context, keys ...[]byte) ([][]byte, error)
	// MSet writes every pair atomically, clearing their expiries.
	MSet(ctx context.Context, pairs ...KV) error
	// IncrBy adds delta to key's integer value (a missing key counts as 0),
	// keeping its expiry; ErrNotInteger if the value is not a canonical
	// decimal int64, ErrOverflow if the result does not fit.
	IncrBy(ctx context.Context, key []byte, delta int64) (int64, error)
	// Expire sets key's expiry to atMs if key exists and reports whether it
	// did. An atMs not in the future deletes the key (and reports true).
	Expire(ctx context.Context, key []byte, atMs int64) (bool, error)
	// Persist removes key's expiry and reports whether it had one.
	Persist(ctx context.Context, key []byte) (bool, error)
	// ExpireTime returns key's expiry (0 if none) or ErrNotFound.
	ExpireTime(ctx context.Context, key []byte) (int64, error)
	// DBSize returns the number of keys this node serves.
	DBSize(ctx context.Context) (int64, error)
	// Scan returns some keys matching pattern (nil or empty: all; see kv.Match)
	// from cursor on, about count of them, and the cursor to continue from
	// (0 when done). Every key present for the whole iteration is returned
	// at least once.
	Scan(ctx context.Context, cursor uint64, pattern []byte, count int) (next uint64, keys [][]byte, err error)
	// ClusterView returns the current placement; it must not block.
	ClusterView() ClusterView
}

// NodeScanner is an optional Backend extension for the port cluster-aware
// clients use (Server.ServeNodeScope): SCAN and DBSIZE over the keys of the
// buckets this node is primary for only, with Scan's cursors. The Backend's
// own Scan and DBSize then cover the whole cluster.
type NodeScanner interface {
	ScanNode(ctx context.Context, cursor uint64, pattern []byte, count int) (next uint64, keys [][]byte, err error)
	DBSizeNode(ctx context.Context) (int64, error)
}

// InfoProvider is an optional Backend extension: sections it returns are
// appended to INFO's output (and selectable by name).
type InfoProvider interface {
	Info(ctx context.Context) ([]InfoSection, error)
}

// InfoSection is one "# Name" block of INFO: ordered "key:value" fields.
type InfoSection struct {
	Name   string
	Fields [][2]string
}

// The types of the Backend's data methods are the keyspace's (package kv),
// named here too so that a Backend can be written against this package
// alone.
type (
	// SetOptions are SET's options, already validated by the server.
	SetOptions = kv.SetOptions
	// SetResult reports what Set did.
	SetResult = kv.SetResult
	// KV is one key/value pair of MSET.
	KV = kv.KV
	// BucketRange is an inclusive range of buckets (Redis Cluster slots).
	BucketRange = kv.BucketRange
)

// ClusterView is the placement as CLUSTER SLOTS/SHARDS/NODES/MYID show it.
type ClusterView struct {
	Epoch uint64
	Self  string        // this node's ID
	Nodes []ClusterNode // every node, in a stable order
}

// ClusterNode is one node of a ClusterView.
type ClusterNode struct {
	ID string
	// Addr is the node's RESP address, host:port. For the node itself, an
	// empty or unspecified host (":6379", "0.0.0.0:6379") is replaced by the
	// local address of the client's connection.
	Addr string
	// Ranges are the bucket ranges the node is primary for, ascending.
	Ranges []BucketRange
	// Health is what failure detection says of the node: HealthOnline
	// (also ""), HealthPFail (suspected: Redis's "fail?") or HealthFail.
	Health string
}

// Health values of a ClusterNode, as Redis Cluster reports its nodes.
const (
	HealthOnline = "online"
	HealthPFail  = "pfail"
	HealthFail   = "fail"
)

// ClusterState sums up v as CLUSTER INFO does: state is "ok" while every
// bucket has a primary that is not failed, "fail" otherwise; ok, pfail and
// fail count the buckets by their primary's health.
func (v ClusterView) ClusterState() (state string, assigned, ok, pfail, fail int) {
	for _, nd := range v.Nodes {
		n := 0
		for _, r := range nd.Ranges {
			n += int(r.End) - int(r.Start) + 1
		}
		assigned += n
		switch nd.Health {
		case HealthFail:
			fail += n
		case HealthPFail:
			pfail += n
		default:
			ok += n
		}
	}
	state = "ok"
	if assigned != router.NumBuckets || fail > 0 {
		state = "fail"
	}
	return state, assigned, ok, pfail, fail
}

// SingleNodeView is the view of a one-node cluster owning every bucket.
func SingleNodeView(id, addr string) ClusterView {
	return ClusterView{Epoch: 1, Self: id, Nodes: []ClusterNode{{
		ID: id, Addr: addr, Ranges: []BucketRange{{Start: 0, End: router.NumBuckets - 1}},
	}}}
}

// ViewFromTable builds a ClusterView from a placement table: every node of t
// with its primary bucket ranges, in t's node order; addrs maps node IDs to
// RESP addresses (a node without one gets an empty Addr).
func ViewFromTable(t *router.Table, self string, addrs map[string]string) ClusterView {
	v := ClusterView{Epoch: t.Epoch(), Self: self}
	for _, id := range t.Nodes() {
		v.Nodes = append(v.Nodes, ClusterNode{ID: id, Addr: addrs[id], Ranges: Ranges(t.BucketsOf(id))})
	}
	return v
}

// Ranges compresses an ascending bucket list into inclusive ranges.
func Ranges(buckets []uint16) []BucketRange {
	var rs []BucketRange
	for _, b := range buckets {
		if n := len(rs); n > 0 && rs[n-1].End+1 == b {
			rs[n-1].End = b
			continue
		}
		rs = append(rs, BucketRange{Start: b, End: b})
	}
	return rs
}

// hostPort splits a node's address; unspecified hosts of the node itself
// become local (the address the client reached us on).
func hostPort(addr string, self bool, local net.Addr) (string, int) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 0
	}
	p := 0
	for _, c := range port {
		if c < '0' || c > '9' || p > 65535 {
			break
		}
		p = p*10 + int(c-'0')
	}
	if self && local != nil {
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			if ta, ok := local.(*net.TCPAddr); ok {
				host = ta.IP.String()
			}
		}
	}
	return host, p
}
