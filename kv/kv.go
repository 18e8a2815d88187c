package kv

import (
	"errors"
	"math"

	"github.com/dbx-kv/dbx/router"
)

// Errors of the keyspace, classified with errors.Is (the server turns them
// into Redis error replies; see server's errors.go).
var (
	// ErrNotFound means the key has no visible value (absent or expired).
	ErrNotFound = errors.New("kv: not found")
	// ErrNotInteger: the value is not a canonical decimal int64
	// ("-ERR value is not an integer or out of range").
	ErrNotInteger = errors.New("value is not an integer or out of range")
	// ErrOverflow: INCRBY's result does not fit an int64
	// ("-ERR increment or decrement would overflow").
	ErrOverflow = errors.New("increment or decrement would overflow")
	// ErrWatchFailed: a watched key changed; Exec wrote nothing (EXEC
	// answers a null array).
	ErrWatchFailed = errors.New("watched key changed")
)

// SetOptions are SET's options, already validated by the server.
type SetOptions struct {
	// ExpireAtMs is the new expiry (Unix ms); 0 clears any expiry unless KeepTTL.
	ExpireAtMs int64
	// KeepTTL keeps the key's current expiry (SET ... KEEPTTL).
	KeepTTL bool
	// NX writes only if the key is absent; XX only if it exists.
	NX, XX bool
	// Get asks for the previous value in SetResult.Old (SET ... GET).
	Get bool
}

// SetResult reports what Set did.
type SetResult struct {
	Applied  bool   // the value was written (NX/XX satisfied)
	Old      []byte // previous value, if SetOptions.Get and OldFound
	OldFound bool
}

// KV is one key/value pair of MSET.
type KV struct {
	Key, Value []byte
}

// BucketRange is an inclusive range of buckets (Redis Cluster slots).
type BucketRange struct {
	Start, End uint16
}

// TxRequest is what a transaction touches.
type TxRequest struct {
	// Keys are the distinct keys read or written, watched keys included.
	Keys [][]byte
	// Reads are the keys among Keys whose values run needs (watched keys
	// included). The others are only written, blindly (SET, MSET, ...):
	// items need not hold them and a backend validating optimistically
	// need not check their versions — locking them to write is enough.
	Reads [][]byte
	// Watch are the watched keys with the versions seen at WATCH.
	Watch []WatchedKey
}

// WatchedKey is one key of WATCH and its version then.
type WatchedKey struct {
	Key     []byte
	Version uint64
}

// TxItem is a key's value as a transaction reads it.
type TxItem struct {
	Value      []byte
	ExpireAtMs int64 // 0 = none
	Found      bool
}

// TxWrite is one write a transaction commits: a value with its expiry, or
// a delete.
type TxWrite struct {
	Key        []byte
	Value      []byte
	ExpireAtMs int64
	Delete     bool
}

// TxFunc computes a transaction's writes from the values of its keys
// (items holds every TxRequest key, by string(key)).
type TxFunc func(items map[string]TxItem) ([]TxWrite, error)

// AddInt is INCRBY on a stored value: it parses cur (nil: a missing key,
// 0) as a canonical decimal int64 and adds delta; ErrNotInteger if cur is
// not one (an empty value is not), ErrOverflow if the sum does not fit.
func AddInt(cur []byte, delta int64) (int64, error) {
	var v int64
	if cur != nil {
		var ok bool
		if v, ok = ParseInt(cur); !ok {
			return 0, ErrNotInteger
		}
	}
	if (delta > 0 && v > math.MaxInt64-delta) || (delta < 0 && v < math.MinInt64-delta) {
		return 0, ErrOverflow
	}
	return v + delta, nil
}

// ParseInt parses a canonical decimal int64 as Redis's string2ll: optional
// '-', no '+', no leading zeros, no spaces. Stored values (INCR) and the
// server's integer arguments are parsed by it.
func ParseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	if len(b) == 1 && b[0] == '0' {
		return 0, true
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	if b[0] < '1' || b[0] > '9' {
		return 0, false
	}
	var v uint64
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		if v > (math.MaxUint64-9)/10 {
			return 0, false
		}
		v = v*10 + uint64(ch-'0')
	}
	if neg {
		if v > 1<<63 {
			return 0, false
		}
		return -int64(v), true
	}
	if v > math.MaxInt64 {
		return 0, false
	}
	return int64(v), true
}

// nextCursor is the SCAN cursor after bucket b: b+1, or 0 past the last
// bucket.
func nextCursor(b uint64) uint64 {
	if b+1 >= router.NumBuckets {
		return 0
	}
	return b + 1
}
