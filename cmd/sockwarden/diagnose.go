package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/remediate"
	"github.com/sockwarden/sockwarden/sample"
)

func init() { subcommands = append(subcommands, newDiagnoseCmd) }

func newDiagnoseCmd(a *app) *cobra.Command {
	var (
		format  *string
		from    string
		quiet   bool
		rules   bool
		symptom string
		port    string
	)
	cmd := &cobra.Command{
		Use:   "diagnose",
		Short: "Read this host (or a bundle) and say whether the app or the kernel is at fault",
		Long: `diagnose takes --samples full samples --interval apart (default 2, 5s), with
a listener watch between them that catches accept-queue bursts, or reads a
bundle or a paste of command outputs (--from FILE, --from - for stdin; see
docs/sample-schema.md, "Pastes"), and answers in four sections: (a) a plain-English read of
the sockets, (b) the verdict, app, kernel, peer or none, with the evidence,
(c) the kernel change current -> proposed, only for kernel-side findings,
(d) the command that verifies it and what "fixed" looks like.

With --symptom (refused, timeout, reset, exhausted) and/or --port, the
report first says whether the evidence explains what clients see, and
what was not read that could.

A finding is confirmed only when every interval shows it under load; a
single sample (a one-snapshot bundle) gives unconfirmed findings only.
Rules and thresholds: docs/rules.md; JSON fields: docs/report-schema.md.

Progress goes to stderr, the report to stdout.

Exit status: 0 healthy (nothing above info), 1 findings, 2 usage or input
error (bad flag, bad config, unreadable bundle), 3 live sampling failed.`,
		Example: `  sudo sockwarden diagnose
  sudo sockwarden diagnose --netns /run/netns/web --samples 3 --interval 2s
  sockwarden diagnose --from bundle.tar.gz -o markdown > ticket.md
  sockwarden diagnose --from ticket.txt
  xclip -o | sockwarden diagnose --from -
  sockwarden diagnose --from bundle.tar.gz --symptom refused --port 8080
  sockwarden diagnose --from bundle.tar.gz -o json | jq '.findings[] | {kind, side, confirmed}'
  sockwarden diagnose --rules`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if rules {
				return diagnose.WriteRules(cmd.OutOrStdout())
			}
			write, err := reportWriter(*format)
			if err != nil {
				return err
			}
			focus, err := diagnoseFocus(symptom, port)
			if err != nil {
				return err
			}
			progress := cmd.ErrOrStderr()
			if quiet {
				progress = io.Discard
			}
			ctx, stop := signalContext()
			defer stop()
			series, err := diagnoseInput(ctx, a, cmd, from, progress)
			if err != nil {
				return err
			}
			r := diagnose.RunFocus(series, a.cfg.Diagnose, focus)
			a.log.Named("diagnose").Debug("diagnosed",
				zap.String("host", r.Host), zap.String("netns", remediate.NetnsName(r.Netns)), zap.Int("samples", r.Samples),
				zap.Int("findings", len(r.Findings)), zap.Int("proposals", len(r.Proposals)), zap.Bool("healthy", r.Healthy))
			if err := write(cmd.OutOrStdout(), r); err != nil {
				return withCode(exitFailed, fmt.Errorf("writing the report: %w", err))
			}
			if !r.Healthy {
				return quietExit(exitFindings)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.Int("samples", config.Defaults().Diagnose.Samples, "number of live samples (config diagnose.samples)")
	f.Duration("interval", config.Defaults().Diagnose.Interval, "time between live samples (config diagnose.interval)")
	config.BindFlag(f, "samples", "diagnose.samples")
	config.BindFlag(f, "interval", "diagnose.interval")
	format = outputFlag(cmd, "markdown", "json")
	// --format was diagnose's -o before every command had one.
	f.Var(f.Lookup("output").Value, "format", "same as -o")
	deprecate(f, "format", "use -o")
	f.StringVar(&from, "from", "", "diagnose a bundle (directory or .tar.gz from `sockwarden collect` or made by hand), or a paste of command outputs (a text file, - for stdin), instead of this host")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress on stderr")
	f.BoolVar(&rules, "rules", false, "list the rules (kinds, sides, conditions, why) and exit")
	f.StringVar(&symptom, "symptom", "", "what clients see: refused, timeout, reset or exhausted; the report answers first whether the evidence explains it")
	f.StringVar(&port, "port", "", "the port the symptom is on (1-65535); with --symptom refused (or alone), checks that something listens on it, on an address clients reach")
	return cmd
}

// diagnoseFocus checks --symptom and --port.
func diagnoseFocus(symptom, port string) (diagnose.Focus, error) {
	var f diagnose.Focus
	if symptom != "" {
		s, err := diagnose.ParseSymptom(symptom)
		if err != nil {
			return f, usageErr("--symptom: %v", err)
		}
		f.Symptom = s
	}
	if port != "" {
		p, err := diagnose.ParsePort(port)
		if err != nil {
			return f, usageErr("--port: %v", err)
		}
		f.Port = p
	}
	return f, nil
}

func reportWriter(format string) (func(io.Writer, diagnose.Report) error, error) {
	switch format {
	case "text", "":
		return diagnose.WriteText, nil
	case "markdown", "md":
		return diagnose.WriteMarkdown, nil
	case "json":
		return diagnose.WriteJSON, nil
	}
	return nil, usageErr("-o: %q is not one of text, markdown, json", format)
}

// inputName names --from in progress lines.
func inputName(from string) string {
	if from == "-" {
		return "stdin"
	}
	return from
}

// diagnoseInput returns the series to judge: a bundle's snapshots, or live
// samples of the configured namespace.
func diagnoseInput(ctx context.Context, a *app, cmd *cobra.Command, from string, progress io.Writer) ([]*sample.Sample, error) {
	if from != "" {
		if a.cfg.Netns != "" {
			return nil, usageErr("--from reads a bundle; --netns applies to live sampling only")
		}
		if cmd.Flags().Changed("samples") || cmd.Flags().Changed("interval") {
			return nil, usageErr("--samples and --interval apply to live sampling; a bundle has the snapshots it was captured with")
		}
		fmt.Fprintf(progress, "reading %s %s\n", sample.InputKind(from), inputName(from))
		series, err := sample.FromInput(from, cmd.InOrStdin(), sample.OptionsFrom(a.cfg.Sample, "", a.log.Named("sample")))
		if err != nil {
			return nil, withCode(exitUsage, err)
		}
		if len(series) == 0 {
			return nil, usageErr("bundle %s: no snapshot in it", from)
		}
		if len(series) == 1 {
			fmt.Fprintf(progress, "%s holds one snapshot: findings cannot be confirmed (capture two with `sockwarden collect`)\n", inputName(from))
		}
		return series, nil
	}
	d := a.cfg.Diagnose
	where := "this host's namespace"
	if a.cfg.Netns != "" {
		where = a.cfg.Netns
	}
	watch := "no listener watch"
	if a.cfg.Sample.WatchInterval > 0 {
		watch = fmt.Sprintf("listener watch every %s", a.cfg.Sample.WatchInterval)
	}
	fmt.Fprintf(progress, "sampling %s: %d samples %s apart, %s ...\n", where, d.Samples, d.Interval, watch)
	opts := sample.OptionsFrom(a.cfg.Sample, a.cfg.Netns, a.log.Named("sample"))
	stop := countdown(progress, "sampling", time.Duration(d.Samples-1)*d.Interval)
	series, err := sample.Series(ctx, opts, d.Samples, d.Interval, a.cfg.Sample.WatchInterval)
	stop()
	if err != nil {
		return nil, withCode(exitFailed, fmt.Errorf("sampling %s: %w", where, err))
	}
	return series, nil
}
