//go:build !sockwarden_lean

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/sockwarden/sockwarden/fleet"
	"github.com/sockwarden/sockwarden/remediate"
)

// Schemas of the fleet commands' JSON documents (docs/schema).
const (
	fleetProposalsSchema = "sockwarden.fleet-proposals/v1"
	fleetStatusSchema    = "sockwarden.fleet-status/v1"
)

func init() {
	subcommands = append(subcommands, newFleetCmd)
}

func newFleetCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "Fleet rollouts: approve one change for many hosts, canary first, in waves, halted by failures",
		Long: `fleet works on the fleet's etcd (fleet.etcd.endpoints). Identical proposals of
many hosts (same finding, key, current and proposed value) form a group;
one "fleet approve" of a group makes a rollout: canary hosts first (one per
kernel release when it can), then waves growing by --wave-factor up to
--max-concurrent, each wave only after every host of the one before verified
and stayed clean for --bake. --halt-after failed or rolled-back
verifications halt the rollout by itself; a verification without load
pauses it. Each host's agent decides for itself from what etcd holds and
claims its place in one transaction; every local guard still runs.

Examples:
  sockwarden fleet proposals                         groups of identical proposals
  sockwarden fleet approve g-1a2b3c4d5e --selector role=web --canary 1 --bake 10m
  sockwarden fleet status                            every rollout, per host
  sockwarden fleet halt                              stop every rollout at once`,
	}
	for _, c := range []func(*app) *cobra.Command{newFleetProposalsCmd, newFleetApproveCmd, newFleetStatusCmd, newFleetHostsCmd,
		newFleetSwitchCmd("pause"), newFleetSwitchCmd("resume"), newFleetSwitchCmd("rollback"), newFleetHaltCmd, newFleetSetupRolesCmd} {
		cmd.AddCommand(c(a))
	}
	return cmd
}

// fleetOf opens the fleet store; without one, a usage error.
func (a *app) fleetOf() (fleet.Store, *fleet.Fleet, error) {
	if !a.cfg.Fleet.Enabled() {
		return nil, nil, usageErr("fleet commands work on the fleet's etcd: set fleet.etcd.endpoints (or SOCKWARDEN_FLEET_ETCD_ENDPOINTS)")
	}
	s, err := a.fleetStore()
	if err != nil {
		return nil, nil, err
	}
	return s, fleet.New(s, "", a.log), nil
}

func fleetErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fleet.ErrNotFound):
		return usageErr("%v", err)
	}
	return withCode(exitFailed, err)
}

// fleetGroup is one line of fleet proposals.
type fleetGroup struct {
	Group    string        `json:"group"`
	Finding  string        `json:"finding"`
	Key      string        `json:"key"`
	Current  string        `json:"current"`
	Proposed string        `json:"proposed"`
	Count    int           `json:"count"`
	Hosts    []string      `json:"hosts"`
	Oldest   time.Time     `json:"oldest"`
	Evidence fleetEvidence `json:"evidence"`
	Rollouts []string      `json:"rollouts"`
}

// fleetEvidence is one host's proposal of the group.
type fleetEvidence struct {
	Host     string `json:"host"`
	Proposal string `json:"proposal"`
	Netns    string `json:"netns,omitempty"`
	Subject  string `json:"subject"`
	Reason   string `json:"reason"`
}

type fleetProposalsDoc struct {
	Schema string       `json:"schema"`
	Hosts  int          `json:"registered_hosts"`
	Groups []fleetGroup `json:"groups"`
}

// groups gathers every host's pending proposals into groups, largest first.
func groups(ps []remediate.Pending, snap fleet.Snapshot) []fleetGroup {
	by := map[string]*fleetGroup{}
	for _, p := range ps {
		if !p.Proposal.Ready || len(p.Proposal.Changes) == 0 {
			continue
		}
		g := fleet.GroupOf(p.Proposal)
		id := g.ID()
		fg := by[id]
		if fg == nil {
			fg = &fleetGroup{Group: id, Finding: g.Finding, Key: g.Key, Current: g.Current, Proposed: g.Proposed, Hosts: []string{}, Rollouts: []string{}}
			by[id] = fg
		}
		fg.Hosts = append(fg.Hosts, p.Proposal.Host)
		if fg.Oldest.IsZero() || p.Recorded.Before(fg.Oldest) {
			fg.Oldest = p.Recorded
			fg.Evidence = fleetEvidence{Host: p.Proposal.Host, Proposal: p.Proposal.ID, Netns: p.Proposal.Netns, Subject: p.Proposal.Subject, Reason: p.Proposal.Reason}
		}
	}
	out := []fleetGroup{}
	for _, g := range by {
		sort.Strings(g.Hosts)
		g.Count = len(g.Hosts)
		for id, r := range snap.Rollouts {
			if r.GroupID == g.Group {
				g.Rollouts = append(g.Rollouts, id)
			}
		}
		sort.Strings(g.Rollouts)
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Group < out[j].Group
	})
	return out
}

func fleetContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// withFleet runs one fleet command on the fleet's etcd: the fleet opened
// (a usage error without fleet.etcd.endpoints) and a context bounded by
// fleetContext, so that every command fails the same way and gives up
// after the same time.
func (a *app) withFleet(run func(ctx context.Context, f *fleet.Fleet) error) error {
	_, f, err := a.fleetOf()
	if err != nil {
		return err
	}
	ctx, cancel := fleetContext()
	defer cancel()
	return run(ctx, f)
}

// withFleetGroups reads what fleet proposals and fleet approve both judge
// by: every host's pending proposals, then, within fleetContext, the
// fleet's snapshot, and groups the one against the other. run gets ctx for
// what it writes next.
func withFleetGroups(s fleet.Store, f *fleet.Fleet, run func(ctx context.Context, gs []fleetGroup, snap fleet.Snapshot) error) error {
	ps, err := s.FleetProposals()
	if err != nil {
		return fleetErr(err)
	}
	ctx, cancel := fleetContext()
	defer cancel()
	snap, err := f.Snapshot(ctx, true)
	if err != nil {
		return fleetErr(err)
	}
	return run(ctx, groups(ps, snap), snap)
}

func newFleetProposalsCmd(a *app) *cobra.Command {
	var format *string
	cmd := &cobra.Command{
		Use:   "proposals",
		Short: "Identical proposals across hosts, one line per group (finding, key, current -> proposed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, f, err := a.fleetOf()
			if err != nil {
				return err
			}
			return withFleetGroups(s, f, func(_ context.Context, gs []fleetGroup, snap fleet.Snapshot) error {
				doc := fleetProposalsDoc{Schema: fleetProposalsSchema, Hosts: len(snap.Hosts), Groups: gs}
				out := cmd.OutOrStdout()
				if *format == "json" {
					return writeJSON(out, doc)
				}
				if len(doc.Groups) == 0 {
					fmt.Fprintf(out, "no pending proposals in the fleet (%d hosts registered)\n", doc.Hosts)
					return nil
				}
				tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "GROUP\tHOSTS\tCHANGE\tFINDING\tOLDEST\tROLLOUTS")
				for _, g := range doc.Groups {
					fmt.Fprintf(tw, "%s\t%d\t%s %s -> %s\t%s\t%s\t%s\n", g.Group, g.Count, g.Key, g.Current, g.Proposed, g.Finding,
						g.Oldest.Local().Format(time.RFC3339), orDash(strings.Join(g.Rollouts, ",")))
				}
				tw.Flush()
				for _, g := range doc.Groups {
					fmt.Fprintf(out, "\n%s on %s: %s\n  evidence (%s, proposal %s): %s: %s\n", g.Group, hostList(g.Hosts), g.Finding,
						g.Evidence.Host, g.Evidence.Proposal, g.Evidence.Subject, g.Evidence.Reason)
				}
				fmt.Fprintf(out, "\napprove a group for a class of hosts: sockwarden fleet approve GROUP --selector role=web\n")
				return nil
			})
		},
	}
	format = outputFlag(cmd, "json")
	return cmd
}

func hostList(h []string) string {
	if len(h) > 8 {
		return strings.Join(h[:8], ", ") + fmt.Sprintf(" and %d more", len(h)-8)
	}
	return strings.Join(h, ", ")
}

func newFleetApproveCmd(a *app) *cobra.Command {
	var sel, comment string
	var canary, maxConc, haltAfter int
	var factor float64
	var bake, ttl time.Duration
	var force bool
	cmd := &cobra.Command{
		Use:   "approve GROUP",
		Short: "Approve one group's change for the hosts --selector picks: one rollout, canary first, then waves",
		Long: `approve records one rollout in etcd. Every host the selector picks that has a
proposal of GROUP (sockwarden fleet proposals) may use it once, for that
exact change; every local guard still runs on the host (kernel verdict, two
fresh agreeing samples, the current value unchanged).

Storm guard: when more than fleet.storm_percent of the registered hosts
show the same finding at once, the rollout is refused (a fleet-wide flood
is not a tuning job) unless --force.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, f, err := a.fleetOf()
			if err != nil {
				return err
			}
			selector, err := fleet.ParseSelector(sel)
			if err != nil {
				return usageErr("--selector: %v", err)
			}
			switch {
			case canary < 1:
				return usageErr("--canary: at least 1, got %d", canary)
			case factor < 1:
				return usageErr("--wave-factor: at least 1, got %g", factor)
			case maxConc < 1:
				return usageErr("--max-concurrent: at least 1, got %d", maxConc)
			case haltAfter < 1:
				return usageErr("--halt-after: at least 1, got %d", haltAfter)
			case bake < 0 || ttl <= 0:
				return usageErr("--bake must be 0 or more and --ttl more than 0")
			}
			return withFleetGroups(s, f, func(ctx context.Context, gs []fleetGroup, snap fleet.Snapshot) error {
				var g *fleetGroup
				for _, x := range gs {
					if x.Group == args[0] {
						g = &x
					}
				}
				if g == nil {
					return usageErr("group %s: no pending proposal of the fleet is in it (sockwarden fleet proposals lists the groups)", args[0])
				}
				// Storm guard: hosts showing the finding, of those registered.
				showing := 0
				for _, h := range snap.Hosts {
					for _, k := range h.Findings {
						if k == g.Finding {
							showing++
							break
						}
					}
				}
				n := len(snap.Hosts)
				storm := n > 0 && showing*100 > a.cfg.Fleet.StormPercent*n
				if storm && !force {
					return withCode(exitFailed, fmt.Errorf("%w: %d of %d registered hosts (%d%%) show %s at once, more than fleet.storm_percent %d%%: a fleet-wide event is not a tuning job; nothing recorded (--force to start anyway)",
						fleet.ErrStorm, showing, n, showing*100/n, g.Finding, a.cfg.Fleet.StormPercent))
				}
				now := time.Now().UTC()
				b := make([]byte, 3)
				rand.Read(b)
				ap := remediate.CurrentApprover()
				r := fleet.Rollout{ID: "r-" + now.Format("20060102T150405") + "-" + hex.EncodeToString(b), GroupID: g.Group,
					Group:    fleet.Group{Finding: g.Finding, Key: g.Key, Current: g.Current, Proposed: g.Proposed},
					Selector: selector, Canary: canary, WaveFactor: factor, MaxConcurrent: maxConc, Bake: fleet.Duration(bake), HaltAfter: haltAfter,
					Approver: ap, Comment: comment, Created: now, Expires: now.Add(ttl), Forced: storm,
					Events: []fleet.Event{{Time: now, What: "approved", Detail: fmt.Sprintf("by %s%s", ap, map[bool]string{true: " (storm guard forced)"}[storm])}}}
				if err := f.CreateRollout(ctx, r); err != nil {
					return fleetErr(err)
				}
				a.log.Info("fleet rollout approved", zapRollout(r)...)
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "rollout %s approved by %s until %s\n  %s on hosts %s (%d now show it)\n  canary %d, waves x%g up to %d at once, bake %s, halt after %d\n",
					r.ID, ap, r.Expires.Local().Format(time.RFC3339), r.Group, fleet.SelectorString(selector), g.Count, canary, factor, maxConc, bake, haltAfter)
				fmt.Fprintf(out, "stored in etcd %s; follow it with: sockwarden fleet status %s\n", s.Endpoints(), r.ID)
				return nil
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&sel, "selector", "", "hosts by fleet.labels: role=web,zone=a (default every host)")
	fl.IntVar(&canary, "canary", 1, "hosts in the first wave")
	fl.Float64Var(&factor, "wave-factor", 2, "each wave is this many times the one before")
	fl.IntVar(&maxConc, "max-concurrent", 5, "most hosts of this rollout in flight at once (and the largest wave)")
	fl.DurationVar(&bake, "bake", 10*time.Minute, "how long a wave's hosts stay clean after verifying before the next wave starts")
	fl.IntVar(&haltAfter, "halt-after", 1, "failed or rolled-back verifications that halt the rollout")
	fl.DurationVar(&ttl, "ttl", 24*time.Hour, "how long the rollout may start hosts")
	fl.StringVar(&comment, "comment", "", "why (recorded with the rollout)")
	fl.BoolVar(&force, "force", false, "start despite the storm guard (fleet.storm_percent)")
	return cmd
}

// hostStatus is one host's line in fleet status.
type hostStatus struct {
	Host     string    `json:"host"`
	State    string    `json:"state"`
	Wave     int       `json:"wave"`
	Kernel   string    `json:"kernel,omitempty"`
	Proposal string    `json:"proposal,omitempty"`
	Change   string    `json:"change,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	Settled  time.Time `json:"settled,omitzero"`
}

// rolloutStatus is one rollout in fleet status.
type rolloutStatus struct {
	ID            string            `json:"id"`
	Group         fleet.Group       `json:"group"`
	GroupID       string            `json:"group_id"`
	Selector      map[string]string `json:"selector"`
	Canary        int               `json:"canary"`
	WaveFactor    float64           `json:"wave_factor"`
	MaxConcurrent int               `json:"max_concurrent"`
	Bake          string            `json:"bake"`
	HaltAfter     int               `json:"halt_after"`
	Approver      string            `json:"approver"`
	Comment       string            `json:"comment,omitempty"`
	Created       time.Time         `json:"created"`
	Expires       time.Time         `json:"expires"`
	State         string            `json:"state"`
	Why           string            `json:"why,omitempty"`
	Counts        map[string]int    `json:"counts"`
	MaxInFlight   int               `json:"max_in_flight"`
	Hosts         []hostStatus      `json:"hosts"`
	Timeline      []fleet.Event     `json:"timeline"`
}

type fleetStatusDoc struct {
	Schema   string          `json:"schema"`
	Halt     *fleet.Halt     `json:"halt"`
	Rollouts []rolloutStatus `json:"rollouts"`
}

func statusOf(snap fleet.Snapshot, id string, maxPerHour int, now time.Time) rolloutStatus {
	v := snap.View(id, now, maxPerHour)
	r := v.Rollout
	st, why := v.State()
	rs := rolloutStatus{ID: r.ID, Group: r.Group, GroupID: r.GroupID, Selector: r.Selector, Canary: r.Canary, WaveFactor: r.WaveFactor,
		MaxConcurrent: r.MaxConcurrent, Bake: time.Duration(r.Bake).String(), HaltAfter: r.HaltAfter, Approver: r.Approver.String(),
		Comment: r.Comment, Created: r.Created, Expires: r.Expires, State: st, Why: why, Counts: map[string]int{},
		Hosts: []hostStatus{}, Timeline: v.Timeline()}
	if rs.Selector == nil {
		rs.Selector = map[string]string{}
	}
	rs.MaxInFlight = fleet.MaxInFlight(rs.Timeline)
	took := map[string]bool{}
	for _, p := range v.Progress {
		took[p.Host] = true
		rs.Hosts = append(rs.Hosts, hostStatus{Host: p.Host, State: p.State, Wave: p.Wave, Kernel: p.Kernel, Proposal: p.Proposal,
			Change: p.Change, Reason: p.Reason, Started: p.Started, Settled: p.Settled})
	}
	for _, h := range snap.Hosts {
		if took[h.Host] || !fleet.Matches(r.Selector, h.Labels) {
			continue
		}
		for _, g := range h.Groups {
			if g == r.GroupID {
				s := "waiting"
				if st == fleet.Halted {
					s = "halted"
				}
				rs.Hosts = append(rs.Hosts, hostStatus{Host: h.Host, State: s, Wave: -1, Kernel: h.Kernel})
			}
		}
	}
	sort.SliceStable(rs.Hosts, func(i, j int) bool { return rs.Hosts[i].Host < rs.Hosts[j].Host })
	for _, h := range rs.Hosts {
		rs.Counts[h.State]++
	}
	// Running with nobody waiting or in flight: every host it picked
	// took part (a host that shows the finding later still may).
	if st == fleet.Running && len(v.Progress) > 0 && rs.Counts["waiting"] == 0 && rs.Counts[fleet.InFlight] == 0 {
		rs.State, rs.Why = fleet.Done, "every selected host with the change took part; a host that shows it later still joins"
	}
	return rs
}

func newFleetStatusCmd(a *app) *cobra.Command {
	var format *string
	cmd := &cobra.Command{
		Use:   "status [ROLLOUT]",
		Short: "Rollouts: state, each host (waiting, in flight, verified, rolled back, skipped, halted) and the timeline",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withFleet(func(ctx context.Context, f *fleet.Fleet) error {
				snap, err := f.Snapshot(ctx, true)
				if err != nil {
					return fleetErr(err)
				}
				now := time.Now()
				doc := fleetStatusDoc{Schema: fleetStatusSchema, Halt: snap.Halt, Rollouts: []rolloutStatus{}}
				var ids []string
				for id := range snap.Rollouts {
					if len(args) == 0 || args[0] == id {
						ids = append(ids, id)
					}
				}
				if len(args) == 1 && len(ids) == 0 {
					return usageErr("%v: %s (sockwarden fleet status lists them)", fleet.ErrNotFound, args[0])
				}
				sort.Strings(ids)
				for _, id := range ids {
					doc.Rollouts = append(doc.Rollouts, statusOf(snap, id, a.cfg.Fleet.MaxChangesPerHour, now))
				}
				switch *format {
				case "json":
					return writeJSON(cmd.OutOrStdout(), doc)
				case "markdown":
					writeFleetMarkdown(cmd.OutOrStdout(), doc)
				default:
					writeFleetText(cmd.OutOrStdout(), doc)
				}
				return nil
			})
		},
	}
	format = outputFlag(cmd, "json", "markdown")
	return cmd
}

func writeFleetText(w io.Writer, doc fleetStatusDoc) {
	if doc.Halt != nil {
		fmt.Fprintf(w, "FLEET HALTED by %s at %s%s (sockwarden fleet halt --clear lifts it)\n\n", doc.Halt.Approver, doc.Halt.Time.Local().Format(time.RFC3339), commentSuffix(doc.Halt.Comment))
	}
	if len(doc.Rollouts) == 0 {
		fmt.Fprintln(w, "no rollouts (sockwarden fleet proposals, then fleet approve GROUP)")
	}
	for i, r := range doc.Rollouts {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "rollout %s  %s\n  %s %s %s -> %s\n", r.ID, strings.ToUpper(r.State), r.Group.Finding, r.Group.Key, r.Group.Current, r.Group.Proposed)
		if r.Why != "" {
			fmt.Fprintf(w, "  why: %s\n", r.Why)
		}
		fmt.Fprintf(w, "  hosts %s, canary %d, waves x%g up to %d, bake %s, halt after %d; most in flight at once: %d\n",
			fleet.SelectorString(r.Selector), r.Canary, r.WaveFactor, r.MaxConcurrent, r.Bake, r.HaltAfter, r.MaxInFlight)
		fmt.Fprintf(w, "  approved by %s at %s%s, expires %s\n", r.Approver, r.Created.Local().Format(time.RFC3339), commentSuffix(r.Comment), r.Expires.Local().Format(time.RFC3339))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  HOST\tWAVE\tSTATE\tKERNEL\tCHANGE\tDETAIL")
		for _, h := range r.Hosts {
			wave := "-"
			if h.Wave >= 0 {
				wave = fmt.Sprint(h.Wave)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", h.Host, wave, h.State, orDash(h.Kernel), orDash(h.Change), clip(h.Reason, 70))
		}
		tw.Flush()
		fmt.Fprintln(w, "  timeline:")
		for _, e := range r.Timeline {
			fmt.Fprintf(w, "    %s  %-10s %-12s %s\n", e.Time.Local().Format("15:04:05.000"), orDash(e.Host), e.What, clip(e.Detail, 90))
		}
	}
}

func writeFleetMarkdown(w io.Writer, doc fleetStatusDoc) {
	if doc.Halt != nil {
		fmt.Fprintf(w, "**Fleet halted** by %s at %s%s\n\n", doc.Halt.Approver, doc.Halt.Time.UTC().Format(time.RFC3339), commentSuffix(doc.Halt.Comment))
	}
	for _, r := range doc.Rollouts {
		fmt.Fprintf(w, "## Rollout `%s`: %s\n\n", r.ID, r.State)
		fmt.Fprintf(w, "- Change: `%s` `%s` -> `%s` (finding %s, group `%s`)\n", r.Group.Key, r.Group.Current, r.Group.Proposed, r.Group.Finding, r.GroupID)
		fmt.Fprintf(w, "- Hosts: `%s`; canary %d, waves x%g up to %d, bake %s, halt after %d\n", fleet.SelectorString(r.Selector), r.Canary, r.WaveFactor, r.MaxConcurrent, r.Bake, r.HaltAfter)
		fmt.Fprintf(w, "- Approved by %s at %s%s\n", r.Approver, r.Created.UTC().Format(time.RFC3339), commentSuffix(r.Comment))
		if r.Why != "" {
			fmt.Fprintf(w, "- State: %s: %s\n", r.State, r.Why)
		}
		fmt.Fprintf(w, "\n| host | wave | state | kernel | change | detail |\n|---|---|---|---|---|---|\n")
		for _, h := range r.Hosts {
			fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s |\n", h.Host, h.Wave, h.State, orDash(h.Kernel), orDash(h.Change), mdCell(h.Reason))
		}
		fmt.Fprintf(w, "\n| time (UTC) | host | step | detail |\n|---|---|---|---|\n")
		for _, e := range r.Timeline {
			fmt.Fprintf(w, "| %s | %s | %s | %s |\n", e.Time.UTC().Format("15:04:05.000"), orDash(e.Host), e.What, mdCell(e.Detail))
		}
		fmt.Fprintln(w)
	}
}

func mdCell(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ") }

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

func commentSuffix(c string) string {
	if c == "" {
		return ""
	}
	return ": " + c
}

func newFleetHostsCmd(a *app) *cobra.Command {
	var format *string
	cmd := &cobra.Command{
		Use:   "hosts",
		Short: "Registered hosts: labels, kernel, version, last tick, pending groups",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withFleet(func(ctx context.Context, f *fleet.Fleet) error {
				hs, err := f.Hosts(ctx)
				if err != nil {
					return fleetErr(err)
				}
				if *format == "json" {
					return writeJSON(cmd.OutOrStdout(), docOf("sockwarden.fleet-hosts/v1", "hosts", hs))
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "HOST\tLABELS\tKERNEL\tVERSION\tLAST TICK\tPENDING GROUPS")
				for _, h := range hs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", h.Host, fleet.SelectorString(h.Labels), h.Kernel, h.Version,
						h.LastTick.Local().Format(time.RFC3339), orDash(strings.Join(h.Groups, ",")))
				}
				return tw.Flush()
			})
		},
	}
	format = outputFlag(cmd, "json")
	return cmd
}

// newFleetSwitchCmd is fleet pause, resume or rollback ROLLOUT.
func newFleetSwitchCmd(what string) func(*app) *cobra.Command {
	short := map[string]string{
		"pause":    "Pause a rollout: no host starts; hosts in flight finish their verification",
		"resume":   "Resume a paused rollout (also one paused by an inconclusive verification)",
		"rollback": "Roll a rollout back: each host restores through its own journal (drift rule kept)",
	}[what]
	return func(a *app) *cobra.Command {
		var comment string
		cmd := &cobra.Command{
			Use: what + " ROLLOUT", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return a.withFleet(func(ctx context.Context, f *fleet.Fleet) error {
					now := time.Now().UTC()
					ap := remediate.CurrentApprover()
					r, err := f.UpdateRollout(ctx, args[0], func(r *fleet.Rollout) error {
						switch what {
						case "pause":
							r.Paused = true
						case "resume":
							r.Paused, r.ResumedAt = false, now
						case "rollback":
							r.Rollback, r.Paused = true, true
						}
						r.Events = append(r.Events, fleet.Event{Time: now, What: what, Detail: "by " + ap.String() + commentSuffix(comment)})
						return nil
					})
					if err != nil {
						return fleetErr(err)
					}
					a.log.Info("fleet rollout "+what, zapRollout(r)...)
					fmt.Fprintf(cmd.OutOrStdout(), "rollout %s: %s by %s; agents see it through their etcd watch within about a second\n", r.ID, what, ap)
					return nil
				})
			},
		}
		cmd.Flags().StringVar(&comment, "comment", "", "why (recorded in the timeline)")
		return cmd
	}
}

func newFleetHaltCmd(a *app) *cobra.Command {
	var comment string
	var clear bool
	cmd := &cobra.Command{
		Use:   "halt",
		Short: "Halt every rollout at once: no host starts (in flight hosts settle themselves); --clear lifts it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withFleet(func(ctx context.Context, f *fleet.Fleet) error {
				var h *fleet.Halt
				if !clear {
					h = &fleet.Halt{Time: time.Now().UTC(), Approver: remediate.CurrentApprover(), Comment: comment}
				}
				if err := f.SetHalt(ctx, h); err != nil {
					return fleetErr(err)
				}
				if clear {
					fmt.Fprintln(cmd.OutOrStdout(), "fleet halt lifted: rollouts go on where they stopped")
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "fleet halted by %s: no host starts a rollout change; hosts in flight finish their own verification\n", h.Approver)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&comment, "comment", "", "why (shown in fleet status)")
	cmd.Flags().BoolVar(&clear, "clear", false, "lift the halt")
	return cmd
}

func newFleetSetupRolesCmd(a *app) *cobra.Command {
	var hosts []string
	var dir string
	var enable bool
	cmd := &cobra.Command{
		Use:   "setup-roles --host NAME... --password-dir DIR [--enable-auth]",
		Short: "Create the etcd roles and users: an operator, and one agent per host confined to its own keys",
		Long: `setup-roles creates, in the fleet's etcd, the role sockwarden-operator (reads
everything under fleet.etcd.prefix, writes rollouts, the halt and approvals)
and for each --host a role sockwarden-agent-HOST (reads everything, writes
only hosts/HOST/, proposals/HOST/, rollout/HOST/ and progress/HOST/), with
a user of the same name each. New users' passwords are written to
DIR/USER.password (mode 0600): give each host its own as
fleet.etcd.password_file. --enable-auth also creates root (DIR/root.password)
and turns etcd's authentication on. Run it as etcd's root (or before auth
is on). The etcdctl equivalent is packaging/etcd-roles.sh.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, _, err := a.fleetOf()
			if err != nil {
				return err
			}
			if len(hosts) == 0 || dir == "" {
				return usageErr("give --host for each agent and --password-dir")
			}
			cli, err := s.Client()
			if err != nil {
				return fleetErr(err)
			}
			ctx, cancel := fleetContext()
			defer cancel()
			res, err := fleet.SetupRoles(ctx, cli, s.Prefix(), hosts, dir, enable)
			if err != nil {
				return withCode(exitFailed, err)
			}
			out := cmd.OutOrStdout()
			for _, p := range res.Permissions {
				fmt.Fprintln(out, p)
			}
			var us []string
			for u := range res.Users {
				us = append(us, u)
			}
			sort.Strings(us)
			for _, u := range us {
				fmt.Fprintf(out, "user %s: password in %s\n", u, res.Users[u])
			}
			for _, u := range res.ExistingUsers {
				fmt.Fprintf(out, "user %s existed: password unchanged\n", u)
			}
			if res.AuthEnabled {
				fmt.Fprintf(out, "authentication enabled; root's password in %s\n", res.RootPassword)
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&hosts, "host", nil, "host name of an agent (repeat)")
	cmd.Flags().StringVar(&dir, "password-dir", "", "directory for the generated passwords")
	cmd.Flags().BoolVar(&enable, "enable-auth", false, "create root and enable etcd authentication")
	return cmd
}

// zapRollout is the log fields naming a rollout.
func zapRollout(r fleet.Rollout) []zap.Field {
	return []zap.Field{zap.String("rollout", r.ID), zap.String("group", r.GroupID), zap.String("change", r.Group.String()),
		zap.String("selector", fleet.SelectorString(r.Selector)), zap.String("approver", r.Approver.String())}
}
