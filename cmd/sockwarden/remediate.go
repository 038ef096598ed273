package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/sockwarden/sockwarden/remediate"
)

func init() {
	subcommands = append(subcommands, newProposeCmd, newProposalsCmd, newApproveCmd, newDenyCmd,
		newApplyCmd, newRollbackCmd, newHistoryCmd, newResolveCmd)
}

// engine wires remediate to the live sampler and diagnosis. Progress goes
// to stderr.
func (a *app) engine(stderr io.Writer) (*remediate.Engine, error) {
	opts := remediate.OptionsFromConfig(a.cfg, a.log)
	opts.OnEvent = func(ev remediate.Event) {
		fmt.Fprintf(stderr, "%s  %-10s %s\n", ev.Time.Local().Format("15:04:05"), ev.Step, ev.Message)
	}
	fs, err := a.storeConn()
	if err != nil {
		return nil, err
	}
	if fs != nil {
		opts.Store, opts.Rollout = fs, fs
	}
	e, err := remediate.New(opts)
	if err != nil {
		return nil, withCode(exitUsage, err)
	}
	return e, nil
}

// recorded names the proposal or change a command acts on (approve, deny,
// apply, rollback): the command's name for the journal, the id's kind,
// and where the operator finds the ids.
type recorded struct {
	op, kind, id, hint string
}

// openEngine opens the engine for cmd, progress to its stderr. A command
// acting on a recorded id gives rec: its log lines are then copied to the
// system journal with the operator's identity (journalOperator) and the id
// is checked before anything is opened (checkID), the same way for all of
// them.
func (a *app) openEngine(cmd *cobra.Command, rec *recorded) (*remediate.Engine, error) {
	if rec != nil {
		a.journalOperator(rec.op)
		if err := a.checkID(rec.kind, rec.id, rec.hint); err != nil {
			return nil, err
		}
	}
	return a.engine(cmd.ErrOrStderr())
}

// withEngine runs a command that samples, waits or writes through the
// engine (propose, resolve, apply, rollback) under signalContext, so that
// Ctrl-C cancels ctx and the engine settles what it started rather than
// the process dying between a write and its journal record. rec is as
// for openEngine.
func (a *app) withEngine(cmd *cobra.Command, rec *recorded, run func(ctx context.Context, e *remediate.Engine) error) error {
	ctx, cancel := signalContext()
	defer cancel()
	e, err := a.openEngine(cmd, rec)
	if err != nil {
		return err
	}
	return run(ctx, e)
}

// resolve settles changes left open by a process that died; run at the start
// of every command that may write.
func (a *app) resolve(ctx context.Context, e *remediate.Engine, w io.Writer) error {
	outs, err := e.Resolve(ctx)
	for _, o := range outs {
		fmt.Fprintf(w, "resolved interrupted change %s (proposal %s): %s: %s\n", o.Change, o.Proposal, o.State, o.Reason)
	}
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func writeOutcome(w io.Writer, o remediate.Outcome, asJSON bool) error {
	if asJSON {
		return writeJSON(w, struct {
			Schema string `json:"schema"`
			remediate.Outcome
		}{schemaOutcome, o})
	}
	head := string(o.State)
	if o.DryRun && o.Guard == "" {
		head = "dry run: would apply"
	}
	if o.Change != "" {
		fmt.Fprintf(w, "change %s: %s\n", o.Change, head)
	} else {
		fmt.Fprintf(w, "proposal %s: %s\n", o.Proposal, head)
	}
	if o.Guard != "" {
		fmt.Fprintf(w, "  guard:    %s\n", o.Guard)
	}
	fmt.Fprintf(w, "  proposal: %s\n", o.Proposal)
	if o.Netns != "" {
		fmt.Fprintf(w, "  netns:    %s\n", o.Netns)
	}
	for _, v := range o.Values {
		live := ""
		if v.Live != "" {
			live = fmt.Sprintf(" (live %s)", v.Live)
		}
		fmt.Fprintf(w, "  %s: %s -> %s%s\n", v.Key, v.Old, v.New, live)
	}
	if o.Approver != "" {
		fmt.Fprintf(w, "  approver: %s\n", oneLine(o.Approver))
	}
	if o.Errno != "" {
		fmt.Fprintf(w, "  errno:    %s\n", o.Errno)
	}
	fmt.Fprintf(w, "  reason:   %s\n", oneLine(o.Reason))
	return nil
}

// oneLine escapes what could break a line of output or fake one: newlines,
// carriage returns, tabs (tabwriter columns), other control characters and
// the Unicode line separators and bidi overrides. Comments and reasons are
// free text from whoever ran approve or deny; history must show them as
// text, never as extra records.
func oneLine(s string) string {
	clean := true
	for _, r := range s {
		if needsEscape(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case needsEscape(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func needsEscape(r rune) bool {
	return unicode.IsControl(r) || r == utf8.RuneError || r == '\u2028' || r == '\u2029' ||
		(r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069')
}
