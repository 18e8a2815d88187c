package server

import (
	"errors"
	"fmt"
	"time"
)

// Config configures a Server. Start from DefaultConfig.
type Config struct {
	// RequirePass, if set, is the password of AUTH (user "default"): until a
	// connection authenticates only AUTH, HELLO, PING and QUIT run.
	RequirePass string
	// KeyBytesMax bounds a key ("-ERR key too large"). Default 64 KiB.
	KeyBytesMax int
	// ValueBytesMax bounds every other argument ("-ERR value too large").
	// Default 16 MiB.
	ValueBytesMax int
	// ArgsMax bounds the arguments of one command, name included
	// ("-ERR too many arguments"). Default 1,048,576.
	ArgsMax int
	// RequestBytesMax bounds the bytes the server buffers for one incomplete
	// request. Beyond it the client gets "-ERR Protocol error: request too
	// large" and is disconnected (RESP cannot be resynchronised mid-request).
	// Must be at least KeyBytesMax+ValueBytesMax+1024. Default 64 MiB.
	RequestBytesMax int
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
}

// DefaultConfig returns the defaults documented on each field.
func DefaultConfig() Config {
	return Config{
		KeyBytesMax:     64 << 10,
		ValueBytesMax:   16 << 20,
		ArgsMax:         1 << 20,
		RequestBytesMax: 64 << 20,
		ConnsMax:        10000,
		RequestTimeout:  2 * time.Second,
		TxnTimeout:      6 * time.Second,
		TxnKeysMax:      1024,
		TxnCommandsMax:  4096,
		WriteTimeout:    10 * time.Second,
		Now:             time.Now,
		Version:         "7.2.0-dbx",
	}
}

// Validate reports every problem at once, each wrapped in ErrInvalidConfig.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.KeyBytesMax < 1 {
		bad("KeyBytesMax (%d) must be at least 1", c.KeyBytesMax)
	}
	if c.ValueBytesMax < 1 {
		bad("ValueBytesMax (%d) must be at least 1", c.ValueBytesMax)
	}
	if c.ArgsMax < 3 {
		bad("ArgsMax (%d) must be at least 3", c.ArgsMax)
	}
	if min := c.KeyBytesMax + c.ValueBytesMax + 1024; c.RequestBytesMax < min {
		bad("RequestBytesMax (%d) must be at least KeyBytesMax+ValueBytesMax+1024 (%d)", c.RequestBytesMax, min)
	}
	if c.ConnsMax < 1 {
		bad("ConnsMax (%d) must be at least 1", c.ConnsMax)
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
	if c.IdleTimeout < 0 {
		bad("IdleTimeout (%s) must not be negative", c.IdleTimeout)
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
