package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sockwarden/sockwarden/sample"
)

func init() { subcommands = append(subcommands, newSampleCmd) }

func newSampleCmd(a *app) *cobra.Command {
	var (
		asJSON bool
		from   string
	)
	cmd := &cobra.Command{
		Use:   "sample",
		Short: "Print the census: states, listeners, destinations, counters, sysctls",
		Long: `sample takes one live census of this host's network namespace (or --netns)
through netlink sock_diag and /proc, or reads a captured bundle (--from, a
directory or .tar.gz made by hand or by 'sockwarden collect'; see README,
"Captured bundles"), or a paste (--from FILE, or --from - for stdin: one
text holding the outputs of ss, netstat, nstat, sysctl, dmesg ... one after
another, as pasted into a ticket; docs/sample-schema.md, "Pastes"), and
prints it: totals by state, the listeners with
their accept queues (Recv-Q/Send-Q, fill) and owners, the top destinations
against the usable ephemeral port range, the processes, the counters that
matter, the sysctls, the kernel log lines, and what could not be read.

-o json prints the Sample as JSON ("schema": "sockwarden.sample/v1", every
field in docs/sample-schema.md). A bundle with several snapshots prints one
JSON object per snapshot, in time order (a stream: jq -s slurps it), and in
text the counter rates between consecutive snapshots.

Exit status: 0 done, 2 usage error or unreadable bundle, 3 live sampling failed.`,
		Example: `  sudo sockwarden sample
  sudo sockwarden sample --netns /run/netns/web -o json | jq '.listeners[] | {local, recv_q, send_q}'
  sockwarden sample --from bundle.tar.gz
  sockwarden sample --from - < ticket.txt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var series []*sample.Sample
			opts := sample.OptionsFrom(a.cfg.Sample, a.cfg.Netns, a.log)
			if from != "" {
				if a.cfg.Netns != "" {
					return usageErr("--from reads a bundle; --netns applies to live sampling only")
				}
				s, err := sample.FromInput(from, cmd.InOrStdin(), opts)
				if err != nil {
					return withCode(exitUsage, err)
				}
				series = s
			} else {
				ctx, stop := signalContext()
				defer stop()
				s, err := sample.Take(ctx, opts)
				if err != nil {
					where := "this namespace"
					if a.cfg.Netns != "" {
						where = a.cfg.Netns
					}
					return withCode(exitFailed, fmt.Errorf("sampling %s: %w", where, err))
				}
				series = []*sample.Sample{s}
			}
			out := cmd.OutOrStdout()
			for i, s := range series {
				if asJSON {
					if err := writeJSON(out, s); err != nil {
						return withCode(exitFailed, err)
					}
					continue
				}
				if err := sample.WriteText(out, s); err != nil {
					return withCode(exitFailed, err)
				}
				if i > 0 {
					if err := sample.WriteRates(out, series[i-1], s); err != nil {
						return withCode(exitFailed, err)
					}
				}
				if _, err := fmt.Fprintln(out); err != nil {
					return withCode(exitFailed, err)
				}
			}
			return nil
		},
	}
	jsonOutput(cmd, &asJSON)
	cmd.Flags().StringVar(&from, "from", "", "read a bundle (directory, .tar.gz or .tar) or a paste of command outputs (any other text file, - for stdin) instead of the live host")
	return cmd
}
