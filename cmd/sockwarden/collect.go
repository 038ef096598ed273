package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sockwarden/sockwarden/sample"
)

func init() { subcommands = append(subcommands, newCollectCmd) }

func newCollectCmd(a *app) *cobra.Command {
	var (
		snapshots int
		gap       time.Duration
	)
	cmd := &cobra.Command{
		Use:   "collect OUT.tar.gz",
		Short: "Capture a bundle (snapshots of ss, sysctl, /proc/net, dmesg) to read elsewhere",
		Long: `collect writes a bundle of this host's network namespace (or --netns) to
OUT.tar.gz: --snapshots directories 1, 2, ... taken --gap apart, each holding
the output of ss -tanpe, ss -tlnp, ss -s, sysctl -a, dmesg, copies of
/proc/net/netstat, snmp, sockstat and sockstat6, the date and /proc/uptime;
exactly the files a person makes by hand (README, "Captured bundles"), read
by the same code ('sockwarden sample --from', 'sockwarden diagnose --from').
The tools run inside the namespace; when one is missing the same format is
written from sock_diag, /proc/sys or /dev/kmsg, and collect.txt in each
snapshot says how every file was made. One snapshot is not enough for a
diagnosis: counters need two to give rates.

The archive is written to a temporary file and renamed: OUT is the whole
bundle or untouched. It holds process names, addresses and kernel log
lines: it is created mode 0600.

Exit status: 0 done, 2 usage error, 3 collect failed.`,
		Example: `  sudo sockwarden collect /tmp/web1.tar.gz
  sudo sockwarden collect --netns /run/netns/web --snapshots 3 --gap 10s web.tar.gz`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if snapshots < 1 || snapshots > 100 {
				return usageErr("--snapshots must be between 1 and 100, got %d", snapshots)
			}
			if gap < 0 {
				return usageErr("--gap must not be negative, got %s", gap)
			}
			out := args[0]
			ctx, stop := signalContext()
			defer stop()
			where := "this namespace"
			if a.cfg.Netns != "" {
				where = a.cfg.Netns
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "collecting %d snapshot(s) of %s, %s apart, into %s ...\n", snapshots, where, gap, out)
			opts := sample.OptionsFrom(a.cfg.Sample, a.cfg.Netns, a.log)
			if err := sample.Collect(ctx, opts, out, snapshots, gap); err != nil {
				return withCode(exitFailed, err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s; read it with: sockwarden sample --from %s\n", out, out)
			return nil
		},
	}
	cmd.Flags().IntVar(&snapshots, "snapshots", 2, "number of snapshots")
	cmd.Flags().DurationVar(&gap, "gap", 5*time.Second, "time between the starts of consecutive snapshots")
	return cmd
}
