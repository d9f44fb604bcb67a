package gossip

import (
	"bytes"
	"context"
	"log"
	"log/slog"
)

// slogWriter turns memberlist's "[LEVEL] memberlist: msg" lines into slog
// records at the matching level.
type slogWriter struct{ logger *slog.Logger }

func newStdLogger(l *slog.Logger) *log.Logger {
	return log.New(slogWriter{l}, "", 0)
}

var levels = []struct {
	prefix []byte
	level  slog.Level
}{
	{[]byte("[DEBUG]"), slog.LevelDebug},
	{[]byte("[INFO]"), slog.LevelInfo},
	{[]byte("[WARN]"), slog.LevelWarn},
	{[]byte("[ERR]"), slog.LevelError},
	{[]byte("[ERROR]"), slog.LevelError},
}

func (w slogWriter) Write(p []byte) (int, error) {
	msg := bytes.TrimSpace(p)
	level := slog.LevelInfo
	for _, l := range levels {
		if bytes.HasPrefix(msg, l.prefix) {
			level = l.level
			msg = bytes.TrimSpace(msg[len(l.prefix):])
			break
		}
	}
	msg = bytes.TrimPrefix(msg, []byte("memberlist: "))
	if w.logger.Enabled(context.Background(), level) {
		w.logger.Log(context.Background(), level, string(msg))
	}
	return len(p), nil
}
