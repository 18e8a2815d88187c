package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/dbx-kv/dbx/kv"
)

// Errors a Backend returns, classified by the server with errors.Is and
// turned into Redis error replies (see the table on each). Backends wrap them
// with detail using %w; the detail is dropped from the reply unless noted.
var (
	// ErrNotFound means the key has no visible value (absent or expired).
	ErrNotFound = kv.ErrNotFound
	// ErrNotInteger: "-ERR value is not an integer or out of range".
	ErrNotInteger = kv.ErrNotInteger
	// ErrOverflow: "-ERR increment or decrement would overflow".
	ErrOverflow = kv.ErrOverflow
	// ErrUnreachable means the owner of a key could not be reached in time:
	// "-ERR owner unreachable: <detail>" (the wrapped message is kept).
	// Backends that know whether the request reached the owner say so with
	// ErrOwnerDown or ErrNoReply instead.
	ErrUnreachable = errors.New("owner unreachable")
	// ErrOwnerDown means the key's owner cannot be reached and the request
	// was certainly not applied (never sent): "-CLUSTERDOWN Hash slot not
	// served: <detail>", Redis Cluster's reply for a slot without a serving
	// owner; clients may retry.
	ErrOwnerDown = errors.New("hash slot not served")
	// ErrNoReply means the request reached the owner (or was sent to it)
	// but no answer came back: it may or may not have been applied.
	// "-ERR outcome unknown: <detail> ..." — do not retry blindly a
	// command that is not idempotent; read the key to find out.
	ErrNoReply = errors.New("outcome unknown")
	// ErrTryAgain: "-TRYAGAIN Multiple keys request during rehashing of slot".
	ErrTryAgain = errors.New("try again")
	// ErrNoReplicas: the bucket's in-sync replica set is smaller than
	// --min-replicas-to-write allows: "-NOREPLICAS Not enough good
	// replicas to write." (reads go on).
	ErrNoReplicas = errors.New("not enough good replicas to write")
	// ErrClusterDown: "-CLUSTERDOWN The cluster is down".
	ErrClusterDown = errors.New("cluster down")
	// ErrCrossSlot: "-CROSSSLOT Keys in request don't hash to the same slot".
	ErrCrossSlot = errors.New("cross slot")
	// ErrKeyTooLarge: "-ERR key too large".
	ErrKeyTooLarge = errors.New("key too large")
	// ErrValueTooLarge: "-ERR value too large".
	ErrValueTooLarge = errors.New("value too large")
	// ErrInvalidConfig wraps every Config.Validate problem.
	ErrInvalidConfig = errors.New("server: invalid config")
	// ErrClosed is returned by Serve after Close.
	ErrClosed = errors.New("server: closed")
)

// MovedError redirects a client to the owner of a bucket, as Redis Cluster's
// "-MOVED <slot> <host:port>" (Ask false) or "-ASK <slot> <host:port>"
// (Ask true). A backend returns it when it chooses to redirect instead of
// forwarding.
type MovedError struct {
	Bucket uint16
	Addr   string // RESP address of the owner, host:port
	Ask    bool
}

func (e *MovedError) Error() string {
	if e.Ask {
		return "ASK " + strconv.Itoa(int(e.Bucket)) + " " + e.Addr
	}
	return "MOVED " + strconv.Itoa(int(e.Bucket)) + " " + e.Addr
}

// RedisError is an error reply passed to the client verbatim (without the
// leading '-'), e.g. RedisError("WRONGTYPE Operation against a key holding
// the wrong kind of value"). A forwarding backend uses it to relay an owner's
// error reply unchanged. Newlines are replaced by spaces on the wire.
type RedisError string

func (e RedisError) Error() string { return string(e) }

// errorReply turns a backend error into the text of a Redis error reply
// (without '-'). timeout is the request timeout, quoted on deadline errors.
func errorReply(err error, timeout fmt.Stringer) string {
	var re RedisError
	var me *MovedError
	switch {
	case errors.As(err, &re):
		return string(re)
	case errors.As(err, &me):
		return me.Error()
	case errors.Is(err, ErrNotInteger):
		return "ERR value is not an integer or out of range"
	case errors.Is(err, ErrOverflow):
		return "ERR increment or decrement would overflow"
	case errors.Is(err, ErrOutcomeUnknown):
		return "ERR " + err.Error() + " (it may or may not have committed: read the keys to find out)"
	case errors.Is(err, ErrTxnConflict):
		return "TRYAGAIN " + err.Error() + ": nothing was written, retry the transaction"
	case errors.Is(err, ErrTxnAborted):
		return "EXECABORT " + err.Error() + ": nothing was written"
	case errors.Is(err, ErrNoReplicas):
		return "NOREPLICAS Not enough good replicas to write."
	case errors.Is(err, ErrTryAgain):
		return "TRYAGAIN Multiple keys request during rehashing of slot"
	case errors.Is(err, ErrClusterDown):
		return "CLUSTERDOWN The cluster is down"
	case errors.Is(err, ErrCrossSlot):
		return "CROSSSLOT Keys in request don't hash to the same slot"
	case errors.Is(err, ErrKeyTooLarge), errors.Is(err, kv.ErrKeyTooLarge):
		return "ERR key too large"
	case errors.Is(err, ErrValueTooLarge), errors.Is(err, kv.ErrValueTooLarge):
		return "ERR value too large"
	case errors.Is(err, ErrNoReply):
		return "ERR " + withPrefix(err, ErrNoReply) + " (the command may or may not have been applied: read the key to find out)"
	case errors.Is(err, ErrOwnerDown):
		return "CLUSTERDOWN " + capitalized(withPrefix(err, ErrOwnerDown)) + " (not applied)"
	case errors.Is(err, ErrUnreachable):
		msg := err.Error()
		if !strings.HasPrefix(msg, ErrUnreachable.Error()) {
			msg = ErrUnreachable.Error() + ": " + msg
		}
		return "ERR " + msg
	case errors.Is(err, context.DeadlineExceeded):
		return "ERR outcome unknown: request timed out after " + timeout.String() + " (the command may or may not have been applied)"

	case errors.Is(err, context.Canceled):
		return "ERR request canceled: server shutting down"
	}
	return "ERR " + err.Error()
}

// withPrefix is err's message starting with sentinel's ("x: detail").
func withPrefix(err, sentinel error) string {
	msg := err.Error()
	if !strings.HasPrefix(msg, sentinel.Error()) {
		msg = sentinel.Error() + ": " + msg
	}
	return msg
}

func capitalized(s string) string {
	if s != "" && 'a' <= s[0] && s[0] <= 'z' {
		return string(s[0]-'a'+'A') + s[1:]
	}
	return s
}

// errorType is the metrics label of an error reply: its first word (ERR,
// MOVED, NOAUTH, ...), bounded to a known set.
func errorType(reply string) string {
	word := reply
	if i := strings.IndexByte(reply, ' '); i >= 0 {
		word = reply[:i]
	}
	switch word {
	case "ERR", "WRONGTYPE", "MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN", "CROSSSLOT", "NOREPLICAS",
		"NOAUTH", "WRONGPASS", "NOPROTO", "READONLY", "LOADING", "BUSY", "EXECABORT":
		return word
	}
	return "OTHER"
}
