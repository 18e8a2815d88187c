package chaos

import (
	"errors"
	"net"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Outcome is what a client knows about an operation once its call returned.
type Outcome string

const (
	// OK: the server answered; the operation took effect (for a
	// compare-and-set: it ran, swapped or not).
	OK Outcome = "ok"
	// Failed: the operation certainly took no effect (an error reply that
	// is sent before anything is applied, or no connection at all).
	Failed Outcome = "failed"
	// Unknown: it may or may not have taken effect, now or later (a
	// timeout, a lost connection, an owner that stopped answering). Checkers
	// treat it as "happened at some point after the call, or never".
	Unknown Outcome = "unknown"
)

// definiteErrorPrefixes are error replies sent before the server applies
// anything: the command was refused as a whole.
var definiteErrorPrefixes = []string{
	"CLUSTERDOWN", "TRYAGAIN", "MOVED", "ASK", "CROSSSLOT", "NOAUTH", "WRONGPASS",
	"WRONGTYPE", "EXECABORT", "ERR unknown command", "ERR wrong number of arguments",
}

// notSentMarker is how dbx's "owner unreachable" reply says the forwarding
// node could not even open a connection to the owner: the transport's
// ErrUnreachable ("no connection to the peer could be used; the request was
// not sent"). A timed-out forward says "request timed out" instead and is
// Unknown.
const notSentMarker = "transport: peer unreachable"

// Classify maps a client error to an Outcome. nil and redis.Nil are OK;
// redis.TxFailedErr (EXEC answered nil: a watched key changed) is OK too —
// the transaction ran and decided not to apply, which callers record as a
// failed compare-and-set.
func Classify(err error) Outcome {
	if err == nil || errors.Is(err, redis.Nil) || errors.Is(err, redis.TxFailedErr) {
		return OK
	}
	var re redis.Error
	if errors.As(err, &re) {
		msg := re.Error()
		for _, p := range definiteErrorPrefixes {
			if strings.HasPrefix(msg, p) {
				return Failed
			}
		}
		if strings.Contains(msg, notSentMarker) {
			return Failed
		}
		return Unknown
	}
	// Not sent: no connection could be made or taken from the pool.
	var oe *net.OpError
	if (errors.As(err, &oe) && oe.Op == "dial") || errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrClosed) {
		return Failed
	}
	return Unknown
}
