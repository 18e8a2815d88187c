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
	w.l.Log(context.Background(), lvl, string(line))
	return len(p), nil
}
