// Package journalzap is a zap core that writes to the systemd journal with
// go-systemd's journal.Send, one entry per log line, with every zap field as
// a journal field of its own: zap.String("key", "net.core.somaxconn") becomes
// SOCKWARDEN_KEY=net.core.somaxconn, so
//
//	journalctl -u sockwarden SOCKWARDEN_KEY=net.core.somaxconn
//
// finds every change of that sysctl.
package journalzap

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
	"go.uber.org/zap/zapcore"
)

// Prefix starts every field name this core writes.
const Prefix = "SOCKWARDEN_"

// SendFunc is journal.Send's shape.
type SendFunc func(message string, priority journal.Priority, vars map[string]string) error

// Core is a zapcore.Core that sends entries to journald.
type Core struct {
	zapcore.LevelEnabler
	ident  string
	send   SendFunc
	fields map[string]string
}

// New returns a core sending to the local journald with the given
// SYSLOG_IDENTIFIER.
func New(enab zapcore.LevelEnabler, ident string) *Core {
	return NewWithSender(enab, ident, journal.Send)
}

// NewWithSender is New with another sender (tests use a recorder).
func NewWithSender(enab zapcore.LevelEnabler, ident string, send SendFunc) *Core {
	return &Core{LevelEnabler: enab, ident: ident, send: send, fields: map[string]string{}}
}

// Enabled reports whether journald is reachable (go-systemd's check).
func Enabled() bool { return journal.Enabled() }

// With adds structured context.
func (c *Core) With(fs []zapcore.Field) zapcore.Core {
	clone := &Core{LevelEnabler: c.LevelEnabler, ident: c.ident, send: c.send, fields: maps.Clone(c.fields)}
	addFields(clone.fields, fs)
	return clone
}

// Check adds the core when the level is enabled.
func (c *Core) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

// Write sends one journal entry. MESSAGE is the log message followed by
// the fields as key=value, so that the default `journalctl` output keeps
// them readable; each field is also a journal field of its own.
func (c *Core) Write(e zapcore.Entry, fs []zapcore.Field) error {
	vars := maps.Clone(c.fields)
	addFields(vars, fs)
	msg := e.Message
	if len(vars) > 0 {
		var b strings.Builder
		b.WriteString(msg)
		for _, k := range slices.Sorted(maps.Keys(vars)) {
			if !strings.HasPrefix(k, Prefix) {
				continue
			}
			fmt.Fprintf(&b, " %s=%s", strings.ToLower(strings.TrimPrefix(k, Prefix)), quote(vars[k]))
		}
		msg = b.String()
	}
	if c.ident != "" {
		vars["SYSLOG_IDENTIFIER"] = c.ident
	}
	if e.LoggerName != "" {
		vars[Prefix+"LOGGER"] = e.LoggerName
	}
	if e.Caller.Defined {
		vars["CODE_FILE"] = e.Caller.File
		vars["CODE_LINE"] = strconv.Itoa(e.Caller.Line)
		if e.Caller.Function != "" {
			vars["CODE_FUNC"] = e.Caller.Function
		}
	}
	if e.Stack != "" {
		vars[Prefix+"STACK"] = e.Stack
	}
	return c.send(msg, priority(e.Level), vars)
}

// Sync is a no-op: every entry is one datagram.
func (c *Core) Sync() error { return nil }

func quote(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\n\"=") {
		return strconv.Quote(s)
	}
	return s
}

func priority(l zapcore.Level) journal.Priority {
	switch {
	case l >= zapcore.DPanicLevel:
		return journal.PriCrit
	case l >= zapcore.ErrorLevel:
		return journal.PriErr
	case l >= zapcore.WarnLevel:
		return journal.PriWarning
	case l >= zapcore.InfoLevel:
		return journal.PriInfo
	default:
		return journal.PriDebug
	}
}

// FieldName turns a zap key into a journal field name: upper case, every
// character outside [A-Z0-9] as '_', with Prefix ("proposal_id" ->
// SOCKWARDEN_PROPOSAL_ID).
func FieldName(key string) string {
	var b strings.Builder
	b.WriteString(Prefix)
	for _, r := range strings.ToUpper(key) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

func addFields(dst map[string]string, fs []zapcore.Field) {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fs {
		f.AddTo(enc)
	}
	for k, v := range enc.Fields {
		dst[FieldName(k)] = valueString(v)
	}
}

func valueString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case time.Duration:
		return x.String()
	case time.Time:
		return x.Format(time.RFC3339Nano)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = valueString(e)
		}
		return strings.Join(parts, ",")
	case fmt.Stringer:
		return x.String()
	default:
		return fmt.Sprint(x)
	}
}
