package coordinator

import (
	"bytes"
	"context"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// newHCLogger returns an hclog.Logger (what Raft logs through) that forwards
// each line to l at the matching level. With a discarding l, Raft logs
// nothing at all.
func newHCLogger(l *slog.Logger) hclog.Logger {
	level := hclog.Info
	if !l.Enabled(context.Background(), slog.LevelError) {
		level = hclog.Off
	} else if l.Enabled(context.Background(), slog.LevelDebug) {
		level = hclog.Debug
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:        "raft",
		Level:       level,
		Output:      slogWriter{l},
		DisableTime: true,
	})
}

// slogWriter turns hclog's "[LEVEL] name: message: k=v" lines into slog
// records.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	line := bytes.TrimSpace(p)
	lvl := slog.LevelInfo
	for _, x := range []struct {
		tag string
		lvl slog.Level
	}{
		{"[ERROR]", slog.LevelError}, {"[WARN]", slog.LevelWarn},
		{"[INFO]", slog.LevelInfo}, {"[DEBUG]", slog.LevelDebug}, {"[TRACE]", slog.LevelDebug},
	} {
		if bytes.HasPrefix(line, []byte(x.tag)) {
			lvl = x.lvl
			line = bytes.TrimSpace(line[len(x.tag):])
			break
		}
	}
	if lvl == slog.LevelError {
		lvl = reconnectLevel(line)
	}
	w.l.Log(context.Background(), lvl, string(line))
	return len(p), nil
}

// reconnectLevel is the level of a Raft ERROR line: a replication or
// heartbeat RPC that failed because its connection ended (EOF, reset,
// broken pipe, closed) is what a peer's restart or rejoin looks like, so
// it is INFO; a refused connection (the peer is down) is WARN — the
// alerts on gossip and dbx_raft_has_leader say when that lasts. Anything
// else stays ERROR.
func reconnectLevel(line []byte) slog.Level {
	rpc := false
	for _, m := range []string{"failed to appendEntries to", "failed to heartbeat to", "failed to make requestVote RPC", "failed to pipeline appendEntries", "failed to install snapshot", "failed to send snapshot to"} {
		if bytes.Contains(line, []byte(m)) {
			rpc = true
			break
		}
	}
	if !rpc {
		return slog.LevelError
	}
	for _, m := range []string{"error=EOF", "connection reset by peer", "broken pipe", "use of closed network connection", "unexpected EOF"} {
		if bytes.Contains(line, []byte(m)) {
			return slog.LevelInfo
		}
	}
	if bytes.Contains(line, []byte("connection refused")) {
		return slog.LevelWarn
	}
	return slog.LevelError
}
