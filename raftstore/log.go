package raftstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// SubsystemKey is the slog attribute that carries the hclog logger name.
const SubsystemKey = "subsystem"

// LevelTrace is the slog level used for hclog's Trace, below slog.LevelDebug.
const LevelTrace = slog.LevelDebug - 4

// NewHCLogger returns an hclog.Logger that forwards every record to l, so
// raft (and anything else that takes an hclog.Logger) writes in the same
// format as the rest of the node. The hclog name ("raft", "raft.snapshot")
// is added as the "subsystem" attribute; hclog key/value pairs become slog
// attributes. A nil l discards everything.
func NewHCLogger(l *slog.Logger, name string) hclog.Logger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &hcLogger{base: l, name: name, level: new(atomic.Int32)}
}

// hcLogger implements hclog.Logger on top of slog. The level set with
// SetLevel is an extra filter on top of the slog handler's own; it is
// shared by a logger and all loggers derived from it, like hclog's.
type hcLogger struct {
	base    *slog.Logger // without the subsystem attribute
	name    string
	implied []any
	level   *atomic.Int32 // hclog.Level; NoLevel means "whatever the handler enables"
}

var _ hclog.Logger = (*hcLogger)(nil)

func toSlogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return LevelTrace
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

func (h *hcLogger) enabled(l hclog.Level) bool {
	if min := hclog.Level(h.level.Load()); min != hclog.NoLevel && l < min {
		return false
	}
	return h.base.Enabled(context.Background(), toSlogLevel(l))
}

// emit must be called directly from the exported method so that the
// caller's frame is at a fixed depth.
func (h *hcLogger) emit(l hclog.Level, msg string, args []any) {
	if quiet[msg] && l > hclog.Debug {
		l = hclog.Debug
	}
	if l == hclog.Off || !h.enabled(l) {
		return
	}
	var pcs [1]uintptr
	runtime.Callers(3, pcs[:]) // runtime.Callers, emit, the exported method
	r := slog.NewRecord(time.Now(), toSlogLevel(l), msg, pcs[0])
	if h.name != "" {
		r.AddAttrs(slog.String(SubsystemKey, h.name))
	}
	r.Add(formatArgs(args)...)
	_ = h.base.Handler().Handle(context.Background(), r)
}

// quiet lists raft messages logged above debug that are routine for lumos:
// replaying committed entries at start skips those already in the
// snapshot.
var quiet = map[string]bool{
	"skipping application of old log": true,
}

// formatArgs renders hclog.Format values (hclog.Fmt("%+v", x)) as the
// strings they stand for; slog would print the format verbs.
func formatArgs(args []any) []any {
	var out []any
	for i, a := range args {
		f, ok := a.(hclog.Format)
		if !ok {
			continue
		}
		if out == nil {
			out = append([]any(nil), args...)
		}
		if len(f) > 0 {
			if format, ok := f[0].(string); ok {
				out[i] = fmt.Sprintf(format, f[1:]...)
				continue
			}
		}
		out[i] = fmt.Sprint(f...)
	}
	if out == nil {
		return args
	}
	return out
}

func (h *hcLogger) Log(level hclog.Level, msg string, args ...any) { h.emit(level, msg, args) }
func (h *hcLogger) Trace(msg string, args ...any)                  { h.emit(hclog.Trace, msg, args) }
func (h *hcLogger) Debug(msg string, args ...any)                  { h.emit(hclog.Debug, msg, args) }
func (h *hcLogger) Info(msg string, args ...any)                   { h.emit(hclog.Info, msg, args) }
func (h *hcLogger) Warn(msg string, args ...any)                   { h.emit(hclog.Warn, msg, args) }
func (h *hcLogger) Error(msg string, args ...any)                  { h.emit(hclog.Error, msg, args) }

func (h *hcLogger) IsTrace() bool { return h.enabled(hclog.Trace) }
func (h *hcLogger) IsDebug() bool { return h.enabled(hclog.Debug) }
func (h *hcLogger) IsInfo() bool  { return h.enabled(hclog.Info) }
func (h *hcLogger) IsWarn() bool  { return h.enabled(hclog.Warn) }
func (h *hcLogger) IsError() bool { return h.enabled(hclog.Error) }

func (h *hcLogger) ImpliedArgs() []any { return append([]any(nil), h.implied...) }

func (h *hcLogger) With(args ...any) hclog.Logger {
	c := *h
	c.base = h.base.With(args...)
	c.implied = append(append([]any(nil), h.implied...), args...)
	return &c
}

func (h *hcLogger) Name() string { return h.name }

func (h *hcLogger) Named(name string) hclog.Logger {
	c := *h
	if h.name != "" {
		c.name = h.name + "." + name
	} else {
		c.name = name
	}
	return &c
}

func (h *hcLogger) ResetNamed(name string) hclog.Logger {
	c := *h
	c.name = name
	return &c
}

func (h *hcLogger) SetLevel(level hclog.Level) { h.level.Store(int32(level)) }

// GetLevel returns the level set with SetLevel or, without one, the lowest
// level the slog handler enables.
func (h *hcLogger) GetLevel() hclog.Level {
	if l := hclog.Level(h.level.Load()); l != hclog.NoLevel {
		return l
	}
	for _, l := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if h.base.Enabled(context.Background(), toSlogLevel(l)) {
			return l
		}
	}
	return hclog.Off
}

func (h *hcLogger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(h.StandardWriter(opts), "", 0)
}

func (h *hcLogger) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	if opts == nil {
		opts = &hclog.StandardLoggerOptions{}
	}
	return &stdWriter{h: h, opts: *opts}
}

// stdWriter turns lines written by a standard library logger into records,
// optionally taking the level from a "[LEVEL]" prefix as hclog does.
type stdWriter struct {
	h    *hcLogger
	opts hclog.StandardLoggerOptions
}

func (w *stdWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(string(bytes.TrimRight(p, "\r\n")), "\n") {
		level, msg := hclog.Info, strings.TrimSpace(line)
		if w.opts.ForceLevel != hclog.NoLevel || w.opts.InferLevels {
			l, rest := splitLevel(msg, w.opts.InferLevelsWithTimestamp)
			msg = rest
			switch {
			case w.opts.ForceLevel != hclog.NoLevel:
				level = w.opts.ForceLevel
			case l != hclog.NoLevel:
				level = l
			}
		}
		w.h.writeLine(level, msg)
	}
	return len(p), nil
}

// writeLine is emit for the standard writer; the caller frame is the
// standard library logger, so no source is recorded.
func (h *hcLogger) writeLine(l hclog.Level, msg string) {
	if quiet[msg] && l > hclog.Debug {
		l = hclog.Debug
	}
	if l == hclog.Off || !h.enabled(l) {
		return
	}
	r := slog.NewRecord(time.Now(), toSlogLevel(l), msg, 0)
	if h.name != "" {
		r.AddAttrs(slog.String(SubsystemKey, h.name))
	}
	_ = h.base.Handler().Handle(context.Background(), r)
}

var levelPrefixes = []struct {
	prefix string
	level  hclog.Level
}{
	{"[TRACE]", hclog.Trace},
	{"[DEBUG]", hclog.Debug},
	{"[INFO]", hclog.Info},
	{"[WARN]", hclog.Warn},
	{"[WARNING]", hclog.Warn},
	{"[ERROR]", hclog.Error},
	{"[ERR]", hclog.Error},
}

// splitLevel finds a "[LEVEL]" marker at the start of s (or, with
// skipTimestamp, anywhere before it) and returns the level and the rest.
func splitLevel(s string, skipTimestamp bool) (hclog.Level, string) {
	for _, p := range levelPrefixes {
		i := strings.Index(s, p.prefix)
		if i == 0 || (i > 0 && skipTimestamp) {
			return p.level, strings.TrimSpace(s[i+len(p.prefix):])
		}
	}
	return hclog.NoLevel, s
}
