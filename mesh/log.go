package mesh

import (
	"context"
	"log"
	"log/slog"
	"strings"
)

// newStdLogger returns a *log.Logger for memberlist whose lines go to l.
// memberlist writes lines such as "[WARN] memberlist: Refuting a suspect
// message"; the bracketed prefix becomes the slog level and the
// "memberlist: " prefix is dropped.
func newStdLogger(l *slog.Logger) *log.Logger {
	return log.New(slogWriter{l: l}, "", 0)
}

// slogWriter turns each line written by a *log.Logger into one slog record.
// A *log.Logger calls Write once per line, under its own mutex.
type slogWriter struct {
	l *slog.Logger
}

func (w slogWriter) Write(p []byte) (int, error) {
	level, msg := parseStdLine(string(p))
	ctx := context.Background()
	if w.l.Enabled(ctx, level) {
		w.l.Log(ctx, level, msg)
	}
	return len(p), nil
}

// levelTraceOffset places memberlist's [TRACE] lines below slog.LevelDebug.
const levelTraceOffset = -4

// parseStdLine splits a memberlist log line into a level and a message.
// Lines without a recognised prefix are logged at Info.
func parseStdLine(s string) (slog.Level, string) {
	s = strings.TrimRight(s, "\r\n")
	level := slog.LevelInfo
	if strings.HasPrefix(s, "[") {
		if end := strings.IndexByte(s, ']'); end > 0 {
			known := true
			switch strings.ToUpper(s[1:end]) {
			case "TRACE":
				level = slog.LevelDebug + levelTraceOffset
			case "DEBUG":
				level = slog.LevelDebug
			case "INFO":
				level = slog.LevelInfo
			case "WARN", "WARNING":
				level = slog.LevelWarn
			case "ERR", "ERROR":
				level = slog.LevelError
			default:
				known = false
			}
			if known {
				s = strings.TrimLeft(s[end+1:], " ")
			}
		}
	}
	s = strings.TrimPrefix(s, "memberlist: ")
	return level, s
}
