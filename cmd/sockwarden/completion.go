package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/lab"
	"github.com/sockwarden/sockwarden/remediate"
)

// flagValues are the fixed values of flags, completed wherever a command
// has a flag of that name (--symptom arrives with issue 9's diagnose).
var flagValues = map[string][]string{
	"mode":      {"observe", "propose", "auto"},
	"log-level": {"debug", "info", "warn", "error"},
	"symptom":   {"refused", "timeout", "reset", "exhausted"},
}

// addCompletions walks the command tree and registers value completion:
// the fixed values above, namespaces for --netns, and for the positional
// arguments proposal ids (approve, deny, apply), change ids (rollback) and
// lab scenario names (lab run).
//
// It runs at every start, for every command of the tree: a flag is looked
// up among those the command declares (Flags, PersistentFlags), not
// through LocalNonPersistentFlags, which builds a new flag set per call
// (three per command, 2 % of `sockwarden version`'s CPU, docs/PERFORMANCE.md).
func addCompletions(c *cobra.Command, a *app) {
	for name, vals := range flagValues {
		if c.Flags().Lookup(name) != nil || c.PersistentFlags().Lookup(name) != nil {
			c.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(vals, cobra.ShellCompDirectiveNoFileComp))
		}
	}
	if c.PersistentFlags().Lookup("netns") != nil {
		c.RegisterFlagCompletionFunc("netns", completeNetns)
	}
	switch c.CommandPath() {
	case "sockwarden approve", "sockwarden deny", "sockwarden apply":
		c.ValidArgsFunction = a.completeProposals
	case "sockwarden rollback":
		c.ValidArgsFunction = a.completeChanges
	case "sockwarden lab run":
		c.ValidArgsFunction = completeScenarios
	}
	for _, sub := range c.Commands() {
		addCompletions(sub, a)
	}
}

func completeNetns(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	names, _ := filepath.Glob("/run/netns/*")
	return names, cobra.ShellCompDirectiveDefault // a /proc/PID/ns/net path completes as a file
}

func completeScenarios(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, s := range lab.Scenarios() {
		out = append(out, s.Name+"\t"+s.Summary)
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completionStateDir is the state directory a completion reads, from the
// command line, the environment and the file when they load, else the
// flag or the default; "" when it does not exist (completing creates
// nothing).
func (a *app) completionStateDir(cmd *cobra.Command) string {
	dir := config.Defaults().StateDir
	if cfg, err := config.Load(config.Options{File: a.cfgFile, Flags: flagSet(cmd)}); err == nil {
		dir = cfg.StateDir
	} else if f := cmd.Flags().Lookup("state-dir"); f != nil && f.Changed {
		dir = f.Value.String()
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return ""
	}
	return dir
}

func (a *app) completeProposals(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	dir := a.completionStateDir(cmd)
	if len(args) > 0 || dir == "" {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	s, err := remediate.OpenFileStore(dir)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ps, _ := s.Proposals()
	var out []string
	for _, p := range ps {
		if ap, err := s.Approval(p.Proposal.ID); err == nil && (ap.UsedBy != "" || ap.Denied) {
			continue // closed: nothing to approve or apply
		}
		var ch []string
		for _, c := range p.Proposal.Changes {
			ch = append(ch, fmt.Sprintf("%s %s->%s", c.Key, remediate.Fold(c.Current), remediate.Fold(c.Proposed)))
		}
		out = append(out, fmt.Sprintf("%s\t%s on %s: %s", p.Proposal.ID, p.Proposal.Finding, p.Proposal.Subject, strings.Join(ch, ", ")))
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

func (a *app) completeChanges(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	dir := a.completionStateDir(cmd)
	if len(args) > 0 || dir == "" {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	j, err := remediate.OpenJournal(dir)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	recs, _, _ := j.Records()
	var out []string
	for _, c := range remediate.Changes(recs) {
		switch c.State {
		case remediate.StateRolledBack, remediate.StateFailed, remediate.StateDrift:
			continue // closed: nothing of ours to restore
		}
		var vs []string
		for _, v := range c.Values {
			vs = append(vs, fmt.Sprintf("%s %s->%s", v.Key, v.Old, v.New))
		}
		out = append(out, fmt.Sprintf("%s\t%s %s", c.ID, c.State, strings.Join(vs, ", ")))
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
