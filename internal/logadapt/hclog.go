// Package logadapt routes the logs of hashicorp/raft, raft-autopilot and
// Badger into log/slog, so that a process has one log stream.
package logadapt

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// hclogAdapter routes hashicorp/raft's hclog output into a
// slog.Logger, so that everything lands in one stream. Values of type
// hclog.Format (raft's hclog.Fmt) are expanded with fmt.Sprintf; a message
// that still carries printf verbs with leftover arguments is expanded too.
type hclogAdapter struct {
	logger  *slog.Logger
	name    string
	implied []any
}

// HCLog returns an hclog.Logger (what hashicorp/raft and raft-autopilot
// take) that writes to logger under the given name. Raft's Info is chatty
// during elections; it stays Info because elections are rare and worth
// seeing.
func HCLog(logger *slog.Logger, name string) hclog.Logger {
	return &hclogAdapter{logger: logger, name: name}
}

func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Info, hclog.DefaultLevel, hclog.NoLevel:
		return slog.LevelInfo
	case hclog.Warn:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

// expandArgs turns hclog's alternating key/value args into slog attributes.
func expandArgs(msg string, args []any) (string, []any) {
	// Some callers pass printf-style arguments after a message holding
	// verbs: expand when the verbs match the arguments.
	if n := printfVerbs(msg); n > 0 && n == len(args) {
		return fmt.Sprintf(msg, args...), nil
	}
	out := make([]any, 0, len(args)+1)
	for i := 0; i < len(args); i += 2 {
		key, ok := args[i].(string)
		if !ok {
			key = fmt.Sprint(args[i])
		}
		if i+1 >= len(args) {
			out = append(out, slog.Any("extra", expandValue(args[i])))
			break
		}
		out = append(out, slog.Any(key, expandValue(args[i+1])))
	}
	return msg, out
}

// printfVerbs counts the formatting verbs in msg ("%%" is not one).
func printfVerbs(msg string) int {
	n := 0
	for i := 0; i < len(msg)-1; i++ {
		if msg[i] != '%' {
			continue
		}
		if msg[i+1] == '%' {
			i++
			continue
		}
		n++
	}
	return n
}

func expandValue(v any) any {
	switch x := v.(type) {
	case hclog.Format:
		if len(x) == 0 {
			return ""
		}
		if f, ok := x[0].(string); ok {
			return fmt.Sprintf(f, x[1:]...)
		}
		return fmt.Sprint(x...)
	case error:
		return x.Error()
	case fmt.Stringer:
		return x.String()
	default:
		return v
	}
}

func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off {
		return
	}
	lvl := slogLevel(level)
	ctx := context.Background()
	if !a.logger.Enabled(ctx, lvl) {
		return
	}
	msg, attrs := expandArgs(msg, args)
	a.logger.Log(ctx, lvl, strings.ToLower(msg[:min(1, len(msg))])+msg[min(1, len(msg)):], attrs...)
}

func (a *hclogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *hclogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *hclogAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *hclogAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *hclogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

func (a *hclogAdapter) enabled(l hclog.Level) bool {
	return a.logger.Enabled(context.Background(), slogLevel(l))
}

func (a *hclogAdapter) IsTrace() bool { return a.enabled(hclog.Trace) }
func (a *hclogAdapter) IsDebug() bool { return a.enabled(hclog.Debug) }
func (a *hclogAdapter) IsInfo() bool  { return a.enabled(hclog.Info) }
func (a *hclogAdapter) IsWarn() bool  { return a.enabled(hclog.Warn) }
func (a *hclogAdapter) IsError() bool { return a.enabled(hclog.Error) }

func (a *hclogAdapter) ImpliedArgs() []any { return a.implied }

func (a *hclogAdapter) With(args ...any) hclog.Logger {
	_, attrs := expandArgs("", args)
	return &hclogAdapter{logger: a.logger.With(attrs...), name: a.name, implied: append(append([]any{}, a.implied...), args...)}
}

func (a *hclogAdapter) Name() string { return a.name }

func (a *hclogAdapter) Named(name string) hclog.Logger {
	if a.name != "" {
		name = a.name + "." + name
	}
	return a.ResetNamed(name)
}

func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	return &hclogAdapter{logger: a.logger.With("lib", name), name: name, implied: a.implied}
}

// SetLevel is a no-op: the slog handler decides what is enabled.
func (a *hclogAdapter) SetLevel(hclog.Level) {}

func (a *hclogAdapter) GetLevel() hclog.Level {
	for _, l := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn} {
		if a.enabled(l) {
			return l
		}
	}
	return hclog.Error
}

func (a *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(opts), "", 0)
}

func (a *hclogAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return &hclogWriter{a: a}
}

// hclogWriter parses "[LEVEL] message" lines of the standard library logger.
type hclogWriter struct{ a *hclogAdapter }

func (w *hclogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := hclog.Info
	for _, l := range []struct {
		prefix string
		level  hclog.Level
	}{{"[TRACE]", hclog.Trace}, {"[DEBUG]", hclog.Debug}, {"[INFO]", hclog.Info}, {"[WARN]", hclog.Warn}, {"[ERR]", hclog.Error}, {"[ERROR]", hclog.Error}} {
		if rest, ok := strings.CutPrefix(line, l.prefix); ok {
			level, line = l.level, strings.TrimSpace(rest)
			break
		}
	}
	w.a.Log(level, line)
	return len(p), nil
}

// discardLogger returns a logger that drops everything.
