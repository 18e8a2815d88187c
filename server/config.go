package server

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dbx-kv/dbx/kv"
	"github.com/dbx-kv/dbx/server/resp"
)

// Config configures a Server. Start from DefaultConfig.
type Config struct {
	// RequirePass, if set, is the password of AUTH (user "default"): until a
	// connection authenticates only AUTH, HELLO, PING and QUIT run, and its
	// requests may have at most 10 arguments of at most 16 KiB each (Redis
	// 7's limits for unauthenticated clients).
	RequirePass string
	// AuthFailuresMax is how many failed AUTH (or HELLO AUTH) attempts a
	// connection may make: the last one's reply says so and the
	// connection is closed. Default 10, in [1, 1000].
	AuthFailuresMax int
	// AuthFailureDelay: the n-th failed attempt on a connection is
	// answered after n times this delay (at most 2 s), so a client
	// guessing passwords gets few tries a second per connection. Default
	// 100 ms, in [0, 2s]; 0 answers at once.
	AuthFailureDelay time.Duration
	// KeyBytesMax bounds a key ("-ERR key too large"). Default and maximum
	// kv.KeyBytesLimit (65,534 bytes: what the engine can store and
	// flush with its bucket prefix).
	KeyBytesMax int
	// ValueBytesMax bounds every other argument ("-ERR value too large").
	// Default 16 MiB; at most kv.ValueBytesLimit.
	ValueBytesMax int
	// ArgsMax bounds the arguments of one command, name included
	// ("-ERR too many arguments"). Default 1,048,576.
	ArgsMax int
	// RequestBytesMax bounds one request as buffered (Redis's
	// client-query-buffer-limit, --client-query-buffer-bytes-max): a
	// request that declares or sends more gets "-ERR Protocol error:
	// request too large ..." and is disconnected (RESP cannot be
	// resynchronised mid-request). Must be at least
	// KeyBytesMax+ValueBytesMax+1024. Default 64 MiB.
	RequestBytesMax int
	// ClientInputBytesMax bounds the input buffers of all connections
	// together (--client-input-bytes-max). A connection whose request needs
	// a bigger buffer than the room left gets "-ERR client input memory
	// limit reached ..." and is disconnected. Default 1 GiB; at least
	// RequestBytesMax.
	ClientInputBytesMax int64
	// CloseTimeout is how long Close lets connections finish before it
	// closes their sockets under them (and again before it gives up
	// waiting). Default 3 s.
	CloseTimeout time.Duration
	// ConnsMax bounds open client connections; one more gets "-ERR max
	// number of clients reached" and is closed. Default 10,000.
	ConnsMax int
	// RequestTimeout bounds every backend call (forwarding included); on
	// expiry the client gets "-ERR owner unreachable: ...". Default 2 s.
	RequestTimeout time.Duration
	// TxnTimeout bounds EXEC and MSETNX (a transaction's deadline plus a
	// margin, so the backend's own deadline answers first).
	TxnTimeout time.Duration
	// TxnKeysMax bounds the distinct keys (queued and watched) of one
	// transaction; TxnCommandsMax the commands queued by one MULTI.
	TxnKeysMax, TxnCommandsMax int
	// IdleTimeout closes a connection that sends nothing (or does not finish
	// a request) for this long; 0 (default) never closes, as Redis's
	// "timeout 0".
	IdleTimeout time.Duration
	// WriteTimeout bounds writing one batch of replies to a client that does
	// not read. Default 10 s.
	WriteTimeout time.Duration
	// TLSHandshakeTimeout bounds the TLS handshake of a connection accepted
	// on a TLS listener (Serve with a tls.NewListener); a client that does
	// not finish it in time is disconnected. Default 10 s, at most 1 min.
	TLSHandshakeTimeout time.Duration
	// Now is the clock turning EX/PX into absolute expiries and expiries into
	// TTLs. Default time.Now.
	Now func() time.Time
	// Metrics receives per-command counters and latencies; nil disables them.
	Metrics *Metrics
	// Version is reported by INFO and HELLO. Default "7.2.0-dbx" (clients
	// parse redis_version for feature checks, so keep it Redis-like).
	Version string
	// Logf, if set, receives connection-level errors.
	Logf func(format string, args ...any)

	// SlowlogLogSlowerThanUsec: commands taking at least this many
	// microseconds go to the slow log (SLOWLOG GET); 0 logs every command,
	// -1 none. Default 10,000 (Redis's). CONFIG SET changes it.
	SlowlogLogSlowerThanUsec int64
	// SlowlogMaxLen bounds the slow log's entries. Default 128, at most
	// SlowlogLenMax.
	SlowlogMaxLen int
	// LatencyMonitorThresholdMs: commands taking at least this many ms are
	// recorded by the latency monitor (LATENCY LATEST/HISTORY); 0 (default,
	// as Redis) disables it.
	LatencyMonitorThresholdMs int64
	// Settings are extra read-only CONFIG GET parameters the node knows
	// (appendfsync, dir, port, ...), name (lower case) and value.
	Settings [][2]string
}

// Upper bounds of settings that CONFIG SET may also change.
const (
	// ConnsMaxLimit bounds ConnsMax (maxclients).
	ConnsMaxLimit = 1 << 20
	// IdleTimeoutSecondsMax bounds IdleTimeout (timeout), as Redis's.
	IdleTimeoutSecondsMax = 1<<31 - 1
)

// DefaultConfig returns the defaults documented on each field.
func DefaultConfig() Config {
	return Config{
		KeyBytesMax:         kv.KeyBytesLimit,
		ValueBytesMax:       16 << 20,
		ArgsMax:             1 << 20,
		RequestBytesMax:     64 << 20,
		ClientInputBytesMax: 1 << 30,
		CloseTimeout:        3 * time.Second,
		ConnsMax:            10000,
		RequestTimeout:      2 * time.Second,
		TxnTimeout:          6 * time.Second,
		TxnKeysMax:          1024,
		TxnCommandsMax:      4096,
		WriteTimeout:        10 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		AuthFailuresMax:     10,
		AuthFailureDelay:    100 * time.Millisecond,
		Now:                 time.Now,
		Version:             "7.2.0-dbx",

		SlowlogLogSlowerThanUsec: 10000,
		SlowlogMaxLen:            128,
	}
}

// Validate reports every problem at once, each wrapped in ErrInvalidConfig.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.KeyBytesMax < 1 || c.KeyBytesMax > kv.KeyBytesLimit {
		bad("KeyBytesMax (%d) must be in [1, %d] (kv.KeyBytesLimit)", c.KeyBytesMax, kv.KeyBytesLimit)
	}
	if c.ValueBytesMax < 1 || c.ValueBytesMax > kv.ValueBytesLimit {
		bad("ValueBytesMax (%d) must be in [1, %d] (kv.ValueBytesLimit)", c.ValueBytesMax, kv.ValueBytesLimit)
	}
	if c.ArgsMax < 3 || c.ArgsMax > 1<<20 {
		bad("ArgsMax (%d) must be in [3, %d]", c.ArgsMax, 1<<20)
	}
	if min := c.KeyBytesMax + c.ValueBytesMax + 1024; c.RequestBytesMax < min {
		bad("RequestBytesMax (%d) must be at least KeyBytesMax+ValueBytesMax+1024 (%d)", c.RequestBytesMax, min)
	}
	if c.ClientInputBytesMax < int64(c.RequestBytesMax) {
		bad("ClientInputBytesMax (%d) must be at least RequestBytesMax (%d)", c.ClientInputBytesMax, c.RequestBytesMax)
	}
	if c.CloseTimeout <= 0 {
		bad("CloseTimeout (%s) must be positive", c.CloseTimeout)
	}
	if c.ConnsMax < 1 || c.ConnsMax > ConnsMaxLimit {
		bad("ConnsMax (%d) must be in [1, %d]", c.ConnsMax, ConnsMaxLimit)
	}
	if c.RequestTimeout <= 0 {
		bad("RequestTimeout (%s) must be positive", c.RequestTimeout)
	}
	if c.TxnTimeout <= 0 {
		bad("TxnTimeout (%s) must be positive", c.TxnTimeout)
	}
	if c.TxnKeysMax < 1 || c.TxnKeysMax > 1<<20 {
		bad("TxnKeysMax (%d) must be in [1, %d]", c.TxnKeysMax, 1<<20)
	}
	if c.TxnCommandsMax < 1 || c.TxnCommandsMax > 1<<20 {
		bad("TxnCommandsMax (%d) must be in [1, %d]", c.TxnCommandsMax, 1<<20)
	}
	if c.IdleTimeout < 0 || c.IdleTimeout > IdleTimeoutSecondsMax*time.Second {
		bad("IdleTimeout (%s) must be in [0, %ds]", c.IdleTimeout, IdleTimeoutSecondsMax)
	}
	if c.SlowlogLogSlowerThanUsec < -1 {
		bad("SlowlogLogSlowerThanUsec (%d) must be -1 (off) or more", c.SlowlogLogSlowerThanUsec)
	}
	if c.SlowlogMaxLen < 0 || c.SlowlogMaxLen > SlowlogLenMax {
		bad("SlowlogMaxLen (%d) must be in [0, %d]", c.SlowlogMaxLen, SlowlogLenMax)
	}
	if c.LatencyMonitorThresholdMs < 0 || c.LatencyMonitorThresholdMs > LatencyThresholdMsMax {
		bad("LatencyMonitorThresholdMs (%d) must be in [0, %d]", c.LatencyMonitorThresholdMs, LatencyThresholdMsMax)
	}
	for _, kv := range c.Settings {
		if kv[0] == "" || kv[0] != strings.ToLower(kv[0]) {
			bad("Settings: name %q must be non-empty lower case", kv[0])
		}
	}
	if c.AuthFailuresMax < 1 || c.AuthFailuresMax > 1000 {
		bad("AuthFailuresMax (%d) must be in [1, 1000]", c.AuthFailuresMax)
	}
	if c.AuthFailureDelay < 0 || c.AuthFailureDelay > authFailureWaitMax {
		bad("AuthFailureDelay (%s) must be in [0, %s]", c.AuthFailureDelay, authFailureWaitMax)
	}
	if c.TLSHandshakeTimeout <= 0 || c.TLSHandshakeTimeout > time.Minute {
		bad("TLSHandshakeTimeout (%s) must be in (0, 1m]", c.TLSHandshakeTimeout)
	}
	if c.WriteTimeout <= 0 {
		bad("WriteTimeout (%s) must be positive", c.WriteTimeout)
	}
	if c.Now == nil {
		bad("Now must be set")
	}
	if c.Version == "" {
		bad("Version must be set")
	}
	return errors.Join(errs...)
}

// readerLimits are the RESP reader's limits for c: one argument may be as
// large as the larger of a key and a value.
func (c *Config) readerLimits() resp.Limits {
	l := resp.DefaultLimits()
	// l.ArgsMax stays Redis's 1,048,576: between ArgsMax and it a request is
	// read and answered "-ERR too many arguments", the connection kept.
	l.BulkBytesMax = max(c.KeyBytesMax, c.ValueBytesMax)
	l.RequestBytesMax = c.RequestBytesMax
	l.UnauthArgsMax = min(l.UnauthArgsMax, c.ArgsMax)
	l.UnauthBulkBytesMax = min(l.UnauthBulkBytesMax, l.BulkBytesMax)
	return l
}
