package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sockwarden/sockwarden/lab"
)

func init() { subcommands = append(subcommands, newLabCmd) }

func newLabCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Build real TCP pathologies in throwaway network namespaces (root)",
		Long: `The lab builds each pathology sockwarden diagnoses, for real, in a network
namespace of its own (/run/netns/sw-lab-...): its sysctls and firewall rules
are set inside that namespace only, its application and load run inside it
on 127.0.0.1, and everything goes away when it stops. Nothing on the host
changes. lab run --in-netns builds it in an existing namespace instead (a
container's own) and restores its sysctls on stop. See docs/lab.md.`,
	}
	cmd.AddCommand(newLabListCmd(), newLabRunCmd(a), newLabCleanCmd())
	return cmd
}

func newLabCleanCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "clean",
		Short: "Remove the namespaces left by lab runs that were killed (their process is gone)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if os.Geteuid() != 0 {
				return withCode(exitFailed, errors.New("lab clean needs root (it unmounts /run/netns/sw-lab-*)"))
			}
			removed, err := lab.CleanStale()
			for _, name := range removed {
				fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", name)
			}
			if err != nil {
				return withCode(exitFailed, err)
			}
			if len(removed) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no stale lab namespace")
			}
			return nil
		},
	}
}

// labScenario is one scenario as `lab list -o json` prints it.
type labScenario struct {
	Name    string      `json:"name"`
	Port    uint16      `json:"port"`
	Summary string      `json:"summary"`
	Expect  string      `json:"expect"`
	Sysctls []labSysctl `json:"sysctls"`
}

type labSysctl struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

func newLabListCmd() *cobra.Command {
	var verbose bool
	var format *string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the scenarios and what a correct diagnosis says about each",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			if *format == "json" {
				list := []labScenario{}
				for _, s := range lab.Scenarios() {
					l := labScenario{Name: s.Name, Port: s.Port, Summary: s.Summary, Expect: s.Expect, Sysctls: []labSysctl{}}
					for _, kv := range s.Sysctls {
						l.Sysctls = append(l.Sysctls, labSysctl{kv.Key, kv.Value})
					}
					list = append(list, l)
				}
				return writeJSON(w, docOf(schemaScenarios, "scenarios", list))
			}
			if verbose {
				for _, s := range lab.Scenarios() {
					fmt.Fprintf(w, "%s\n  builds: %s\n  expect: %s\n", s.Name, s.Summary, s.Expect)
					for _, kv := range s.Sysctls {
						fmt.Fprintf(w, "  sysctl (namespace only): %s = %s\n", kv.Key, kv.Value)
					}
					fmt.Fprintln(w)
				}
				return nil
			}
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "SCENARIO\tBUILDS")
			for _, s := range lab.Scenarios() {
				fmt.Fprintf(tw, "%s\t%s\n", s.Name, s.Summary)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "also print the expected verdict and the namespace's sysctls")
	format = outputFlag(cmd, "json")
	return cmd
}

func newLabRunCmd(a *app) *cobra.Command {
	var (
		duration time.Duration
		relisten bool
		inNetns  string
	)
	cmd := &cobra.Command{
		Use:   "run SCENARIO",
		Short: "Build a scenario and keep it up until interrupted or --duration ends",
		Example: `  sockwarden lab run somaxconn-capped --relisten --duration 5m
  # in another terminal:
  ss -N sw-lab-1234-1 -tln
  sockwarden diagnose --netns /run/netns/sw-lab-1234-1
  # inside a container with its own network namespace (systemd-nspawn
  # --private-network), in that namespace itself:
  sockwarden lab run somaxconn-capped --relisten --in-netns /proc/self/ns/net`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if duration <= 0 {
				return usageErr("--duration: must be positive, got %s", duration)
			}
			if !slices.Contains(lab.Names(), args[0]) {
				return usageErr("%w: %q (see sockwarden lab list)", lab.ErrUnknownScenario, args[0])
			}
			if cmd.Flags().Changed("in-netns") && inNetns == "" {
				return usageErr("--in-netns: empty path (want /run/netns/NAME or /proc/PID/ns/net)")
			}
			if os.Geteuid() != 0 {
				return withCode(exitFailed, errors.New("lab run needs root (it creates or enters a network namespace and writes its sysctls)"))
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			env, err := lab.Start(ctx, args[0], lab.Options{Duration: duration, Relisten: relisten, Netns: inNetns, Log: a.log})
			if err != nil {
				return withCode(exitFailed, err)
			}
			var expect string
			for _, s := range lab.Scenarios() {
				if s.Name == env.Scenario {
					expect = s.Expect
				}
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "scenario %s running in network namespace %s\n", env.Scenario, env.Netns)
			fmt.Fprintf(w, "application: %s (pid %d), listening on %s inside the namespace\n", env.Comm, env.PID, env.Listen)
			if inNetns != "" {
				fmt.Fprintln(w, "existing namespace: its sysctls are restored on stop, the namespace is kept")
			}
			fmt.Fprintf(w, "expect: %s\n\nlook at it:\n", expect)
			if env.Name != "" {
				fmt.Fprintf(w, "  ss -N %s -tln\n", env.Name)
				fmt.Fprintf(w, "  ss -N %s -tanp\n", env.Name)
				fmt.Fprintf(w, "  ip netns exec %s nstat -az TcpExtListenOverflows TcpExtTCPReqQFullDrop\n", env.Name)
			} else {
				fmt.Fprintf(w, "  nsenter --net=%s ss -tln\n", env.Netns)
				fmt.Fprintf(w, "  nsenter --net=%s ss -tanp\n", env.Netns)
				fmt.Fprintf(w, "  nsenter --net=%s nstat -az TcpExtListenOverflows TcpExtTCPReqQFullDrop\n", env.Netns)
			}
			fmt.Fprintf(w, "  sockwarden diagnose --netns %s\n", env.Netns)
			fmt.Fprintf(w, "\nstops by itself in %s, or on Ctrl-C\n", duration)
			<-env.Done()
			if err := errors.Join(env.Err(), env.Stop()); err != nil {
				return withCode(exitFailed, err)
			}
			if inNetns != "" {
				fmt.Fprintf(w, "scenario %s stopped, sysctls restored in %s (namespace kept)\n", env.Scenario, env.Netns)
			} else {
				fmt.Fprintf(w, "scenario %s stopped, namespace %s removed\n", env.Scenario, env.Name)
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&duration, "duration", lab.DefaultDuration, "how long the scenario stays up")
	cmd.Flags().BoolVar(&relisten, "relisten", false, "the application calls listen() again when the namespace's somaxconn changes, as a reload would")
	cmd.Flags().StringVar(&inNetns, "in-netns", "", "build the scenario in an existing namespace, e.g. a container's own /proc/self/ns/net; its sysctls are restored on stop; refused for the host's initial namespace and for scenarios with firewall rules")
	return cmd
}
