//go:build !sockwarden_lean

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sockwarden/sockwarden/agent"
	"github.com/sockwarden/sockwarden/remediate"
)

func newStatusCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Ask the running agent for its state, pending proposals and the change being verified (root)",
		Long: `status asks the running agent over its control socket (agent.control_socket,
default /run/sockwarden/control.sock; root only: the agent checks the
caller's credentials) and prints its mode, the namespaces it watches, open
findings, proposals waiting for "sockwarden approve", the change being
verified and the latest outcomes.

In a fleet (fleet.etcd.endpoints set) it also says whether the agent reaches
etcd (while it does not, nothing is applied), what an approved proposal waits
for, and which hosts hold the fleet's rollout slots (read from etcd by this
command).

Exit status: 0 healthy, 1 findings or proposals pending or the fleet store
unreachable, 3 no agent answered.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
			defer cancel()
			st, err := agent.QueryStatus(ctx, a.cfg.Agent.ControlSocket)
			if err != nil {
				if errors.Is(err, agent.ErrNotRoot) {
					return withCode(exitUsage, fmt.Errorf("%w (run it as root)", err))
				}
				return withCode(exitFailed, err)
			}
			out := cmd.OutOrStdout()
			var slots *fleetSlots
			if fs, err := a.fleetStore(); err != nil {
				return err
			} else if fs != nil {
				slots = &fleetSlots{}
				sctx, cancel := context.WithTimeout(cmd.Context(), a.cfg.Fleet.Etcd.RequestTimeout)
				slots.Holders, slots.Max, err = fs.Holders(sctx)
				cancel()
				if err != nil {
					slots.Error = err.Error()
				}
			}
			if asJSON {
				v := any(st)
				if slots != nil {
					v = struct {
						agent.Status
						Slots *fleetSlots `json:"fleet_slots"`
					}{st, slots}
				}
				if err := writeJSON(out, v); err != nil {
					return err
				}
			} else {
				writeStatus(out, st, time.Now())
				if slots != nil {
					writeSlots(out, *slots, time.Now())
				}
			}
			if st.Unhealthy > 0 || len(st.Pending) > 0 || st.Verifying != nil || (st.Fleet != nil && !st.Fleet.Reachable) {
				return quietExit(exitFindings)
			}
			return nil
		},
	}
	jsonOutput(cmd, &asJSON)
	return cmd
}

// fleetSlots is the fleet's rollout slots as this command read them.
type fleetSlots struct {
	Max     int                    `json:"max"`
	Holders []remediate.SlotHolder `json:"holders"`
	Error   string                 `json:"error,omitempty"`
}

func writeSlots(w io.Writer, s fleetSlots, now time.Time) {
	if s.Error != "" {
		fmt.Fprintf(w, "\nfleet rollout slots: unreadable: %s\n", s.Error)
		return
	}
	fmt.Fprintf(w, "\nfleet rollout slots: %d of %d in use\n", len(s.Holders), s.Max)
	for _, h := range s.Holders {
		fmt.Fprintf(w, "  %s  change %s (proposal %s) %s since %s\n", h.Host, h.Change, h.Proposal, h.ValuesString(), ago(now, h.Since))
	}
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return now.Sub(t).Round(time.Second).String() + " ago"
}

func writeStatus(w io.Writer, st agent.Status, now time.Time) {
	ready := "starting (no good sample yet)"
	if st.Ready {
		ready = "ready"
	}
	fmt.Fprintf(w, "sockwarden agent %s, pid %d, mode %s, up %s, %s\n", st.Version, st.PID, st.Mode,
		now.Sub(st.Started).Round(time.Second), ready)
	fmt.Fprintf(w, "state: %s\n", st.Line)
	fmt.Fprintf(w, "ticks: %d, full censuses: %d\n", st.Ticks, st.Full)
	if st.LastError != "" {
		fmt.Fprintf(w, "last error: %s\n", st.LastError)
	}
	fmt.Fprintln(w, "\nnamespaces:")
	for _, n := range st.Namespaces {
		name := n.Path
		if name == "" {
			name = agent.NetnsLabel
		}
		switch {
		case n.LastSample.IsZero() && n.Error == "":
			// Zeros here would read as a namespace without listeners.
			fmt.Fprintf(w, "  %s: sampling (no sample yet)\n", name)
			continue
		case n.LastSample.IsZero():
			fmt.Fprintf(w, "  %s: no sample yet\n    error: %s\n", name, n.Error)
			continue
		}
		fmt.Fprintf(w, "  %s: last sample %s (%s, %s), %d listeners", name, ago(now, n.LastSample), n.Tier,
			n.Duration.Round(time.Microsecond), n.Listeners)
		if n.Sockets > 0 {
			fmt.Fprintf(w, ", %d sockets at the last census", n.Sockets)
		}
		if n.FullReason != "" {
			fmt.Fprintf(w, " (full census because: %s)", n.FullReason)
		}
		if n.Error != "" {
			fmt.Fprintf(w, "\n    error: %s", n.Error)
		}
		fmt.Fprintln(w)
	}
	if len(st.Findings) > 0 {
		fmt.Fprintln(w, "\nfindings:")
		for _, f := range st.Findings {
			conf := "not yet confirmed"
			if f.Confirmed {
				conf = "confirmed"
			}
			fmt.Fprintf(w, "  %-8s %-6s %s on %s (%s): %s\n", f.Severity, f.Side, f.Kind, f.Subject, conf, f.Title)
		}
	}
	if len(st.Pending) > 0 {
		fmt.Fprintln(w, "\npending proposals (approve with: sockwarden approve ID):")
		for _, p := range st.Pending {
			fmt.Fprintf(w, "  %s  %s  (%s on %s) since %s\n", p.ID, strings.Join(p.Changes, ", "), p.Finding, p.Subject, ago(now, p.Since))
		}
	}
	if v := st.Verifying; v != nil {
		fmt.Fprintf(w, "\nin flight: %s %s->%s (proposal %s): %s", v.Key, v.Old, v.New, v.Proposal, v.State)
		if v.Detail != "" {
			fmt.Fprintf(w, ": %s", v.Detail)
		}
		fmt.Fprintln(w)
	}
	if f := st.Fleet; f != nil {
		switch {
		case f.Since.IsZero():
			fmt.Fprintf(w, "\nfleet: etcd %s, not checked yet\n", f.Endpoints)
		case f.Reachable:
			fmt.Fprintf(w, "\nfleet: etcd %s, reachable (since %s)\n", f.Endpoints, ago(now, f.Since))
		default:
			fmt.Fprintf(w, "\nfleet: etcd %s UNREACHABLE since %s: nothing is applied until it answers (still observing, proposals kept locally)\n  error: %s\n",
				f.Endpoints, ago(now, f.Since), f.Error)
		}
		if f.Waiting != "" {
			fmt.Fprintf(w, "  %s\n", f.Waiting)
		}
	}
	if len(st.Recent) > 0 {
		fmt.Fprintln(w, "\nrecent changes:")
		for _, c := range st.Recent {
			fmt.Fprintf(w, "  %s  %s %s->%s (proposal %s) %s: %s\n", c.State, c.Key, c.Old, c.New, c.Proposal, ago(now, c.Since), c.Detail)
		}
	}
}
