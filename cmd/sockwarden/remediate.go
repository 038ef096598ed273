package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/remediate"
	"github.com/sockwarden/sockwarden/sample"
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
	fs, err := a.fleetStore()
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

// resolve settles changes left open by a process that died; run at the start
// of every command that may write.
func (a *app) resolve(ctx context.Context, e *remediate.Engine, w io.Writer) error {
	outs, err := e.Resolve(ctx)
	for _, o := range outs {
		fmt.Fprintf(w, "resolved interrupted change %s (proposal %s): %s: %s\n", o.Change, o.Proposal, o.State, o.Reason)
	}
	return err
}

func newProposeCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "propose",
		Short: "Diagnose now and record the kernel-side proposals for approval",
		Long: `propose takes diagnose.samples samples diagnose.interval apart (as
sockwarden diagnose does), and records every proposal of the report in the
state directory, pending an operator's approval. It changes nothing in the
kernel. The agent records its proposals the same way.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := signalContext()
			defer cancel()
			e, err := a.engine(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			stop := countdown(cmd.ErrOrStderr(), "sampling", time.Duration(a.cfg.Diagnose.Samples-1)*a.cfg.Diagnose.Interval)
			series, err := sample.Series(ctx, sample.OptionsFrom(a.cfg.Sample, a.cfg.Netns, a.log), a.cfg.Diagnose.Samples, a.cfg.Diagnose.Interval, a.cfg.Sample.WatchInterval)
			stop()
			if err != nil {
				return withCode(exitFailed, err)
			}
			rep := diagnose.Run(series, a.cfg.Diagnose)
			ps, err := e.Propose(rep, "sockwarden propose")
			if err != nil {
				return withCode(exitFailed, err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				if ps == nil {
					ps = []remediate.Pending{}
				}
				return writeJSON(out, docOf(schemaProposals, "proposals", ps))
			}
			if len(ps) == 0 {
				fmt.Fprintln(out, "No kernel-side proposal: nothing to approve.")
				return nil
			}
			for _, p := range ps {
				writePending(out, p, nil, time.Now())
			}
			fmt.Fprintf(out, "Approve with: sockwarden approve ID [--ttl 1h]; then: sockwarden apply ID\n")
			return nil
		},
	}
	jsonOutput(cmd, &asJSON)
	cmd.Flags().Int("samples", 0, "number of samples (default from config diagnose.samples)")
	cmd.Flags().Duration("interval", 0, "time between samples (default from config diagnose.interval)")
	config.BindFlag(cmd.Flags(), "samples", "diagnose.samples")
	config.BindFlag(cmd.Flags(), "interval", "diagnose.interval")
	return cmd
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// proposalState says where a proposal stands: pending, approved (until),
// denied, expired, or used by a change (with the change's state).
func proposalState(p remediate.Pending, appr *remediate.Approval, changes map[string]remediate.Change, now time.Time) string {
	if appr == nil {
		return "pending"
	}
	err := appr.Usable(now)
	switch {
	case errors.Is(err, remediate.ErrApprovalDenied):
		return "denied by " + appr.Approver.String()
	case errors.Is(err, remediate.ErrApprovalUsed):
		if c, ok := changes[appr.UsedBy]; ok {
			return fmt.Sprintf("change %s: %s", c.ID, c.State)
		}
		return "used by change " + appr.UsedBy
	case errors.Is(err, remediate.ErrApprovalExpired):
		return "approval expired " + appr.Expires.Local().Format(time.RFC3339)
	}
	return fmt.Sprintf("approved by %s until %s", appr.Approver, appr.Expires.Local().Format("15:04:05"))
}

func writePending(w io.Writer, p remediate.Pending, appr *remediate.Approval, now time.Time) {
	pr := p.Proposal
	fmt.Fprintf(w, "%s  %s on %s (%s-side)%s\n", pr.ID, pr.Finding, pr.Subject, p.Side, map[bool]string{true: "", false: "  [not ready: " + pr.NotReadyReason + "]"}[pr.Ready])
	for _, c := range pr.Changes {
		fmt.Fprintf(w, "    %s: %s -> %s\n", c.Key, remediate.Fold(c.Current), remediate.Fold(c.Proposed))
	}
	if pr.Netns != "" {
		fmt.Fprintf(w, "    namespace: %s\n", pr.Netns)
	}
	if pr.Reason != "" {
		fmt.Fprintf(w, "    why: %s\n", pr.Reason)
	}
	for _, n := range pr.Notes {
		fmt.Fprintf(w, "    note: %s\n", n)
	}
}

func newProposalsCmd(a *app) *cobra.Command {
	var asJSON, all, fleet bool
	cmd := &cobra.Command{
		Use:   "proposals",
		Short: "List recorded proposals with their age and state (--fleet: every host's, from etcd)",
		Long: `proposals lists the proposals recorded on this host (by sockwarden propose
or the agent) with their age and state: pending, approved by WHO until WHEN,
denied, expired, or the change that used the approval and its state.

In a fleet (fleet.etcd.endpoints set), proposals and approvals live in etcd,
shared by every host: --fleet lists the open proposals of every host, so an
operator can approve from anywhere; the host's agent applies an approved
proposal at its next tick, one host at a time (fleet.max_concurrent).
Changes are journaled on the host that made them: a change's state shows
only on its own host.

Examples:
  sockwarden proposals                  this host's open proposals
  sockwarden proposals --all -o json    also used and denied ones, as JSON
  sockwarden proposals --fleet          every host's, from etcd
  sockwarden approve 3c2731033c78       approve one of them, from any host`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if fleet && !a.cfg.Fleet.Enabled() {
				return usageErr("--fleet lists every host's proposals from etcd: set fleet.etcd.endpoints (or SOCKWARDEN_FLEET_ETCD_ENDPOINTS)")
			}
			e, err := a.engine(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			var ps []remediate.Pending
			if fleet {
				ps, err = a.fleet.FleetProposals()
			} else {
				ps, err = e.Store().Proposals()
			}
			if err != nil {
				return withCode(exitFailed, err)
			}
			recs, _, err := e.Journal().Records()
			if err != nil {
				return withCode(exitFailed, err)
			}
			changes := map[string]remediate.Change{}
			for _, c := range remediate.Changes(recs) {
				changes[c.ID] = c
			}
			now := time.Now()
			type row struct {
				remediate.Pending
				Age      string              `json:"age"`
				State    string              `json:"state"`
				Approval *remediate.Approval `json:"approval,omitempty"`
			}
			var rows []row
			for _, p := range ps {
				var ap *remediate.Approval
				if x, err := e.Store().Approval(p.Proposal.ID); err == nil {
					ap = &x
				}
				st := proposalState(p, ap, changes, now)
				if !all && ap != nil && (ap.UsedBy != "" || ap.Denied) {
					continue
				}
				rows = append(rows, row{Pending: p, Age: now.Sub(p.Recorded).Truncate(time.Second).String(), State: st, Approval: ap})
			}
			out := cmd.OutOrStdout()
			if asJSON {
				if rows == nil {
					rows = []row{}
				}
				return writeJSON(out, docOf(schemaProposals, "proposals", rows))
			}
			if len(rows) == 0 {
				fmt.Fprintln(out, "No open proposal (sockwarden propose records them; --all shows closed ones).")
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			if fleet {
				fmt.Fprint(tw, "HOST\t")
			}
			fmt.Fprintln(tw, "ID\tAGE\tFINDING\tSUBJECT\tCHANGE\tNETNS\tSTATE")
			for _, r := range rows {
				var ch []string
				for _, c := range r.Proposal.Changes {
					ch = append(ch, fmt.Sprintf("%s %s->%s", c.Key, remediate.Fold(c.Current), remediate.Fold(c.Proposed)))
				}
				if fleet {
					fmt.Fprintf(tw, "%s\t", orDash(r.Proposal.Host))
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", oneLine(r.Proposal.ID), r.Age, oneLine(r.Proposal.Finding), oneLine(r.Proposal.Subject),
					oneLine(strings.Join(ch, ", ")), oneLine(orDash(r.Proposal.Netns)), oneLine(r.State))
			}
			return tw.Flush()
		},
	}
	jsonOutput(cmd, &asJSON)
	cmd.Flags().BoolVar(&all, "all", false, "also list used and denied proposals")
	cmd.Flags().BoolVar(&fleet, "fleet", false, "list the proposals of every host from etcd (needs fleet.etcd.endpoints)")
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newApproveCmd(a *app) *cobra.Command {
	var o remediate.ApproveOptions
	cmd := &cobra.Command{
		Use:   "approve PROPOSAL_ID",
		Short: "Approve one recorded proposal (used once, expires after --ttl)",
		Long: `approve records that you, the operator, approve this exact proposal: its id
covers the host, the namespace, the key and both the current and the proposed
value. The approval is used by one apply, expires after --ttl (at most
remediate.max_approval_ttl), and names you: your real uid and login uid
(SUDO_USER is recorded only as a claim). It writes nothing to the
kernel; sockwarden apply does, after checking every guard again.

In a fleet (fleet.etcd.endpoints set) the approval is stored in etcd: approve
from any host (sockwarden proposals --fleet lists every host's proposals);
the proposal's own host applies it (its agent at the next tick), and the
approval is used once across the whole fleet.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("ttl") && o.TTL <= 0 {
				return usageErr("--ttl %s: an approval must last a positive time (at most remediate.max_approval_ttl, %s)", o.TTL, a.cfg.Remediate.MaxApprovalTTL)
			}
			a.journalOperator("approve")
			if err := a.checkID("proposal", args[0], "sockwarden proposals lists them"); err != nil {
				return err
			}
			e, err := a.engine(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			ap, err := e.Approve(args[0], o)
			if errors.Is(err, remediate.ErrNotFound) || errors.Is(err, remediate.ErrBadID) {
				return usageErr("%v (sockwarden proposals lists them)", err)
			} else if errors.Is(err, remediate.ErrBadTTL) {
				return usageErr("%v", err)
			} else if err != nil {
				return withCode(exitFailed, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "approved %s by %s until %s%s\n", ap.Proposal, ap.Approver, ap.Expires.Local().Format(time.RFC3339),
				map[bool]string{true: " (unit restart allowed)", false: ""}[ap.AllowRestart])
			if a.fleet != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "stored in etcd %s; host %s applies it (its agent at the next tick)\n", a.fleet.Endpoints(), orDash(ap.Host))
			}
			if p, err := e.Store().Proposal(args[0]); err == nil {
				if p.Side != diagnose.SideKernel {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: the finding behind %s is %s-side: apply will refuse it (guard 1)\n", args[0], p.Side)
				} else if !p.Proposal.Ready {
					fmt.Fprintf(cmd.ErrOrStderr(), "note: %s was not confirmed when recorded (%s); apply checks fresh samples first (guard 3)\n", args[0], p.Proposal.NotReadyReason)
				}
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&o.TTL, "ttl", 0, "how long the approval stays valid (default remediate.approval_ttl, 1h; at most remediate.max_approval_ttl, 168h)")
	cmd.Flags().StringVar(&o.Comment, "comment", "", "why you approve (recorded in the journal)")
	cmd.Flags().BoolVar(&o.AllowRestart, "allow-restart", false, "allow restarting the listener's systemd unit so it listens again (needs remediate.restart_unit too)")
	return cmd
}

func newDenyCmd(a *app) *cobra.Command {
	var comment string
	cmd := &cobra.Command{
		Use:   "deny PROPOSAL_ID",
		Short: "Deny a recorded proposal (replaces any approval)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a.journalOperator("deny")
			if err := a.checkID("proposal", args[0], "sockwarden proposals lists them"); err != nil {
				return err
			}
			e, err := a.engine(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if err := e.Deny(args[0], comment); errors.Is(err, remediate.ErrNotFound) || errors.Is(err, remediate.ErrBadID) {
				return usageErr("%v", err)
			} else if errors.Is(err, remediate.ErrInFlight) {
				return withCode(exitFailed, err)
			} else if err != nil {
				return withCode(exitFailed, err)
			}
			a.log.Info("proposal denied", zap.String("proposal", args[0]), zap.String("comment", comment))
			fmt.Fprintf(cmd.OutOrStdout(), "denied %s\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&comment, "comment", "", "why (recorded in the journal)")
	return cmd
}

func newApplyCmd(a *app) *cobra.Command {
	var o remediate.ApplyOptions
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "apply PROPOSAL_ID",
		Short: "Apply an approved proposal under guard, verify it, keep or roll back",
		Long: `apply runs the whole guarded path once, in the foreground: three fresh
samples (--interval apart) re-diagnosed, the five guards in order (kernel
side, allowlist and bounds, fresh samples agree, approval, live value), the
journaled write and read-back, then verification for --verify-window, and
keep or roll back. Progress goes to stderr, the outcome to stdout.
--dry-run runs every guard and writes nothing.

In a fleet (fleet.etcd.endpoints set) the approval is read from etcd and used
once fleet-wide, and a sixth guard (6-fleet-slot) takes one of the fleet's
fleet.max_concurrent rollout slots before anything is written, holding it
until the change is kept or rolled back. With every slot taken, or etcd
unreachable, the apply is refused (journaled, nothing written, the approval
left unused): try again later.

Exit status: 0 verified (or kept, or a clean dry run), 3 refused, rolled
back, failed or drift, 2 usage.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext()
			defer cancel()
			a.journalOperator("apply")
			w, iv := o.Window, o.Interval
			if w == 0 {
				w = a.cfg.Verify.Window
			}
			if iv == 0 {
				iv = a.cfg.Verify.Interval
			}
			if w < 0 || iv < 0 || iv > w {
				return usageErr("--interval %s and --verify-window %s: both positive, the interval no longer than the window", iv, w)
			}
			if err := a.checkID("proposal", args[0], "sockwarden propose records proposals; sockwarden proposals lists them"); err != nil {
				return err
			}
			e, err := a.engine(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			pp, err := e.Store().Proposal(args[0])
			if errors.Is(err, remediate.ErrNotFound) {
				return usageErr("%v (sockwarden propose records proposals; sockwarden proposals lists them)", err)
			} else if err != nil && !errors.Is(err, remediate.ErrStoreUnavailable) {
				// An unreachable fleet store is left to Apply, which
				// refuses and journals it (fail closed).
				return withCode(exitFailed, err)
			}
			if err == nil && a.cfg.Netns != "" && a.cfg.Netns != pp.Proposal.Netns {
				return usageErr("proposal %s is for namespace %q, not --netns %q", args[0], pp.Proposal.Netns, a.cfg.Netns)
			}
			if !o.DryRun {
				if err := a.resolve(ctx, e, cmd.ErrOrStderr()); err != nil {
					return withCode(exitFailed, err)
				}
			}
			out, err := e.Apply(ctx, args[0], o)
			logOutcome(a.log, out)
			if werr := writeOutcome(cmd.OutOrStdout(), out, asJSON); werr != nil {
				return werr
			}
			if err != nil || !out.OK() {
				return withCode(exitFailed, errors.New(""))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.DryRun, "dry-run", false, "run every guard, print what would be written, write nothing")
	jsonOutput(cmd, &asJSON)
	f.DurationVar(&o.Window, "verify-window", 0, "verification window (default verify.window)")
	f.DurationVar(&o.Interval, "interval", 0, "sample interval for the fresh samples and the verification (default verify.interval)")
	return cmd
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

func newRollbackCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "rollback CHANGE_ID",
		Short: "Restore a change's old value, only if the live value is still ours",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext()
			defer cancel()
			a.journalOperator("rollback")
			if err := a.checkID("change", args[0], "sockwarden history lists changes"); err != nil {
				return err
			}
			e, err := a.engine(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if err := a.resolve(ctx, e, cmd.ErrOrStderr()); err != nil {
				return withCode(exitFailed, err)
			}
			out, err := e.Rollback(ctx, args[0])
			logOutcome(a.log, out)
			if errors.Is(err, remediate.ErrNotFound) {
				return usageErr("%v (sockwarden history lists changes)", err)
			}
			if werr := writeOutcome(cmd.OutOrStdout(), out, asJSON); werr != nil {
				return werr
			}
			if err != nil || (out.State != remediate.StateRolledBack) {
				return withCode(exitFailed, errors.Join(err, errors.New("")))
			}
			return nil
		},
	}
	jsonOutput(cmd, &asJSON)
	return cmd
}

func newResolveCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "resolve",
		Short: "Settle changes left applied or verifying by a process that died (remediate.on_restart)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := signalContext()
			defer cancel()
			e, err := a.engine(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			outs, err := e.Resolve(ctx)
			for _, o := range outs {
				logOutcome(a.log, o)
			}
			if asJSON {
				if outs == nil {
					outs = []remediate.Outcome{}
				}
				if werr := writeJSON(cmd.OutOrStdout(), docOf(schemaOutcomes, "outcomes", outs)); werr != nil {
					return werr
				}
				return withCode(exitFailed, err)
			}
			for _, o := range outs {
				writeOutcome(cmd.OutOrStdout(), o, false)
			}
			if len(outs) == 0 && err == nil {
				fmt.Fprintln(cmd.OutOrStdout(), "Nothing to resolve.")
			}
			return withCode(exitFailed, err)
		},
	}
	jsonOutput(cmd, &asJSON)
	return cmd
}

func newHistoryCmd(a *app) *cobra.Command {
	var asJSON, records bool
	cmd := &cobra.Command{
		Use:   "history",
		Short: "Show every change in the journal with its state and values",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := a.engine(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			recs, damage, err := e.Journal().Read()
			if err != nil {
				return withCode(exitFailed, err)
			}
			for _, d := range damage {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", oneLine(d))
			}
			out := cmd.OutOrStdout()
			if records {
				if asJSON {
					if recs == nil {
						recs = []remediate.Record{}
					}
					return writeJSON(out, docOf(schemaRecords, "records", recs))
				}
				for _, r := range recs {
					fmt.Fprintf(out, "%s  %-11s %s %s %s %s\n", r.Time.Local().Format(time.RFC3339), oneLine(string(r.State)), oneLine(r.Proposal),
						oneLine(r.Change), oneLine(r.Guard), oneLine(r.Reason))
				}
				return nil
			}
			changes := remediate.Changes(recs)
			props := remediate.OpenProposals(recs)
			if asJSON {
				if changes == nil {
					changes = []remediate.Change{}
				}
				if props == nil {
					props = []remediate.ProposalState{}
				}
				return writeJSON(out, struct {
					Schema    string                    `json:"schema"`
					Changes   []remediate.Change        `json:"changes"`
					Proposals []remediate.ProposalState `json:"proposals"`
				}{schemaHistory, changes, props})
			}
			if len(changes) == 0 && len(props) == 0 {
				fmt.Fprintln(out, "No change in the journal.")
				return nil
			}
			if len(props) > 0 {
				tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "PROPOSAL\tLAST\tSTATE\tCHANGE\tNETNS\tBY\tREASON")
				for _, p := range props {
					var ch []string
					for _, v := range p.Values {
						ch = append(ch, fmt.Sprintf("%s %s->%s", v.Key, v.Old, v.New))
					}
					st := string(p.State)
					if p.Guard != "" {
						st += " (" + p.Guard + ")"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", oneLine(p.Proposal), p.Time.Local().Format("2006-01-02 15:04:05"), oneLine(st),
						oneLine(strings.Join(ch, ", ")), oneLine(orDash(p.Netns)), oneLine(orDash(p.Approver)), oneLine(p.Reason))
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				if len(changes) == 0 {
					return nil
				}
				fmt.Fprintln(out)
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "CHANGE\tSTARTED\tSTATE\tKEY\tOLD\tNEW\tNETNS\tPROPOSAL\tAPPROVER\tREASON")
			for _, c := range changes {
				for i, v := range c.Values {
					reason := ""
					if i == 0 {
						reason = c.Reason
						if c.Errno != "" {
							reason = c.Errno + ": " + reason
						}
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", oneLine(c.ID), c.Started.Local().Format("2006-01-02 15:04:05"), oneLine(string(c.State)),
						oneLine(v.Key), oneLine(v.Old), oneLine(v.New), oneLine(orDash(c.Netns)), oneLine(c.Proposal), oneLine(c.Approver), oneLine(reason))
				}
			}
			return tw.Flush()
		},
	}
	jsonOutput(cmd, &asJSON)
	cmd.Flags().BoolVar(&records, "records", false, "show every journal record, proposals and refusals included")
	return cmd
}
