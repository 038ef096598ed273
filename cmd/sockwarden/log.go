package main

import (
	"io"
	"os"
	"strconv"

	"github.com/coreos/go-systemd/v22/journal"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sys/unix"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/internal/journalzap"
	"github.com/sockwarden/sockwarden/remediate"
)

// newLogger builds the process logger: console when asked, or with
// log_format auto on a terminal; JSON when asked, or with auto when stderr
// is not a terminal (a pipe, a file, a CI log), as packaging/config.yaml
// says. The agent replaces the core with a journald one when it runs under
// systemd (see agent.go).
func newLogger(cfg config.Config, w io.Writer) (*zap.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, err
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if cfg.LogFormat == "json" || (cfg.LogFormat == "auto" && !isTerminal(w)) {
		enc = zapcore.NewJSONEncoder(encCfg)
	} else {
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	}
	ws := zapcore.AddSync(w)
	if f, ok := w.(*os.File); ok {
		ws = zapcore.Lock(f)
	}
	return zap.New(zapcore.NewCore(enc, ws, lvl)), nil
}

// isTerminal says whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// systemJournal is where operator actions are copied; tests replace it.
var systemJournal = struct {
	enabled func() bool
	send    journalzap.SendFunc
}{journalzap.Enabled, journal.Send}

// journalOperator copies the command's log lines (the engine's "proposal
// approved", "writing sysctl", "sysctl restored", the outcome) to the
// system journal when there is one (/run/systemd/journal/socket), with the
// operator's identity: an approve, deny, apply or rollback run by hand is
// then found next to the agent's entries, as
//
//	journalctl -t sockwarden SOCKWARDEN_COMMAND=approve
//
// The console or JSON on stderr is unchanged. journald adds _UID and
// _AUDIT_LOGINUID itself; SOCKWARDEN_UID, _LOGINUID and _SUDO_USER say it
// in our own fields, which survive a forward to another log store.
func (a *app) journalOperator(command string) {
	if a.log == nil || !systemJournal.enabled() {
		return
	}
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(a.cfg.LogLevel)); err != nil {
		lvl = zapcore.InfoLevel
	}
	who := remediate.CurrentApprover()
	core := journalzap.NewWithSender(lvl, "sockwarden", systemJournal.send).With([]zapcore.Field{
		zap.String("command", command), zap.Int("uid", who.UID), zap.String("loginuid", loginUIDString(who)),
		zap.String("operator", who.String()), zap.String("sudo_user", who.SudoUser),
	})
	a.log = zap.New(zapcore.NewTee(a.log.Core(), core))
}

// loginUIDString is the operator's audit login uid (the uid the operator
// logged in as, kept across sudo and su), "" when unset or unreadable.
func loginUIDString(who remediate.Approver) string {
	if who.LoginUID == nil {
		return ""
	}
	return strconv.FormatUint(uint64(*who.LoginUID), 10)
}

// logOutcome logs a change made from the command line (apply, rollback)
// the way the agent logs its own: one line per key with the outcome's
// fields. Refusals and dry runs changed nothing: the engine's "apply
// refused" line says it.
func logOutcome(log *zap.Logger, o remediate.Outcome) {
	if o.Change == "" || o.DryRun || o.State == "" {
		return
	}
	lvl := log.Info
	switch o.State {
	case remediate.StateRolledBack:
		lvl = log.Warn
	case remediate.StateFailed, remediate.StateDrift:
		lvl = log.Error
	}
	for _, v := range o.Values {
		lvl("kernel change "+string(o.State), remediate.OutcomeFields(o, v)...)
	}
}
