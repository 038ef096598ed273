package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sockwarden/sockwarden/remediate"
)

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
