package main

import (
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"
)

// logFlags are the logging flags of the commands that run nodes.
type logFlags struct {
	level  string
	format string
	// levelVar is the live level of the logger built by logger(), so that
	// `dev` can quiet the expected noise of stopping.
	levelVar slog.LevelVar
}

func (l *logFlags) register(cmd *cobra.Command, defaultLevel string) {
	cmd.Flags().StringVar(&l.level, "log-level", envOr("MERIDIAN_LOG_LEVEL", defaultLevel), "debug, info, warn or error (env MERIDIAN_LOG_LEVEL)")
	cmd.Flags().StringVar(&l.format, "log-format", envOr("MERIDIAN_LOG_FORMAT", "text"), "text or json (env MERIDIAN_LOG_FORMAT)")
}

// logger builds the process logger writing to w.
func (l *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.level)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", l.level)
	}
	l.levelVar.Set(level)
	opts := &slog.HandlerOptions{Level: &l.levelVar}
	switch strings.ToLower(l.format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usagef("--log-format %q: want text or json", l.format)
}

// quietUnlessVerbose silences the logger from now on unless the user asked
// for info or debug: stopping a whole region in one process makes Raft log
// errors about peers that are going away, which is expected there.
func (l *logFlags) quietUnlessVerbose() {
	if l.levelVar.Level() >= slog.LevelWarn {
		l.levelVar.Set(slog.LevelError + 4)
	}
}

// quietWhile raises the level to error until the returned function is
// called, unless the user asked for info or debug: a deployment forming in
// one process makes Raft warn about elections and missing logs, which is
// expected while it forms.
func (l *logFlags) quietWhile() (restore func()) {
	prev := l.levelVar.Level()
	if prev < slog.LevelWarn {
		return func() {}
	}
	l.levelVar.Set(max(prev, slog.LevelError))
	return func() { l.levelVar.Set(prev) }
}
