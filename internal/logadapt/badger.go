package logadapt

import (
	"fmt"
	"log/slog"
	"strings"
)

// BadgerLogger is the logger interface Badger's options take
// (badger.Logger), declared here so this package needs no Badger import.
type BadgerLogger interface {
	Errorf(string, ...any)
	Warningf(string, ...any)
	Infof(string, ...any)
	Debugf(string, ...any)
}

// Badger returns a Badger logger writing to l; Badger's Info is Debug here
// (it reports every compaction and table flush).
func Badger(l *slog.Logger) BadgerLogger { return badgerLogger{l} }

type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error(strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Infof(f string, a ...any) {
	b.l.Debug(strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Debugf(f string, a ...any) {
	b.l.Debug(strings.TrimSpace(fmt.Sprintf(f, a...)))
}
