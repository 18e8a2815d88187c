package coordinator

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestRaftReconnectLogLevels: a peer's restart or rejoin (Raft's
// "failed to appendEntries ... error=EOF") is INFO, a refused connection
// WARN; other errors stay ERROR.
func TestRaftReconnectLogLevels(t *testing.T) {
	var buf bytes.Buffer
	w := slogWriter{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, c := range []struct{ line, level string }{
		{`[ERROR] raft: failed to appendEntries to: peer="{Voter n2 127.0.0.1:7380}" error=EOF`, "INFO"},
		{`[ERROR] raft: failed to heartbeat to: peer=127.0.0.1:7380 backoff time=10ms error="read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer"`, "INFO"},
		{`[ERROR] raft: failed to appendEntries to: peer="{Voter n2 127.0.0.1:7380}" error="dial tcp 127.0.0.1:7380: connect: connection refused"`, "WARN"},
		{`[ERROR] raft: failed to appendEntries to: peer="{Voter n2 x}" error="msgpack: invalid code"`, "ERROR"},
		{`[ERROR] raft: failed to take snapshot: error="disk full"`, "ERROR"},
		{`[WARN] raft: heartbeat timeout reached, starting election`, "WARN"},
	} {
		buf.Reset()
		w.Write([]byte(c.line + "\n"))
		if !strings.Contains(buf.String(), "level="+c.level+" ") {
			t.Errorf("%s\n  logged as %s, want level %s", c.line, strings.TrimSpace(buf.String()), c.level)
		}
	}
}
