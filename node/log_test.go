package node

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestLibraryReconnectLogLevels: memberlist's and Raft transport's errors
// for a connection that ended are INFO, refused WARN, others ERROR.
func TestLibraryReconnectLogLevels(t *testing.T) {
	var buf bytes.Buffer
	w := &slogWriter{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, c := range []struct{ line, level string }{
		{"2026/12/07 [ERR] memberlist: Push/Pull with n2 failed: EOF\n", "INFO"},
		{"[ERR] raft-net: failed to decode incoming command: error=\"read tcp: connection reset by peer\"\n", "INFO"},
		{"[ERR] memberlist: Failed to send ping: dial tcp 127.0.0.1:1: connect: connection refused\n", "WARN"},
		{"[ERR] memberlist: Failed to decrypt packet\n", "ERROR"},
	} {
		buf.Reset()
		w.Write([]byte(c.line))
		if !strings.Contains(buf.String(), "level="+c.level+" ") {
			t.Errorf("%q logged as %s, want %s", c.line, strings.TrimSpace(buf.String()), c.level)
		}
	}
}
