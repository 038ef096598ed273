package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sockwarden/sockwarden/remediate"
)

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
