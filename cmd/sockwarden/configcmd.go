package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sockwarden/sockwarden/config"
)

func init() { subcommands = append(subcommands, newConfigCmd) }

const schemaConfig = "sockwarden.config/v1"

func newConfigCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show the effective configuration and where each value came from, or check a file",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newConfigShowCmd(a), newConfigCheckCmd())
	return cmd
}

func newConfigShowCmd(a *app) *cobra.Command {
	var format *string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Print every setting in force with its source: default, file, env or flag",
		Long: `show prints every configuration key with the value in force and where it
came from: the default, the file (` + config.DefaultPath + ` or --config), a
SOCKWARDEN_* environment variable, or a flag; the later wins, in that order.
A bad file or variable is an error naming the key (exit 2).`,
		Example: `  sockwarden config show
  SOCKWARDEN_AGENT_MODE=observe sockwarden config show -o json | jq '.settings[] | select(.source != "default")'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, settings, err := config.Explain(config.Options{File: a.cfgFile, Flags: flagSet(cmd)})
			if err != nil {
				return withCode(exitUsage, err)
			}
			out := cmd.OutOrStdout()
			if *format == "json" {
				if settings == nil {
					settings = []config.Setting{}
				}
				return writeJSON(out, struct {
					Schema   string           `json:"schema"`
					File     string           `json:"file"`
					Settings []config.Setting `json:"settings"`
				}{schemaConfig, cfg.File, settings})
			}
			if cfg.File != "" {
				fmt.Fprintf(out, "# file: %s\n", cfg.File)
			} else {
				fmt.Fprintf(out, "# no config file (%s absent): defaults, environment and flags\n", config.DefaultPath)
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			// The value last: a long list does not push the source off.
			fmt.Fprintln(tw, "KEY\tSOURCE\tVALUE")
			for _, s := range settings {
				src := s.Source
				if s.Origin != "" && s.Source != config.SourceFile {
					src += " " + s.Origin
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Key, src, showValue(s.Value))
			}
			return tw.Flush()
		},
	}
	format = outputFlag(cmd, "json")
	return cmd
}

// showValue prints a value as it would be written in the file.
func showValue(v any) string {
	switch x := v.(type) {
	case string:
		if x == "" {
			return `""`
		}
		return x
	case []string:
		return "[" + strings.Join(x, ", ") + "]"
	}
	return fmt.Sprint(v)
}

func newConfigCheckCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check FILE",
		Short: "Check a configuration file alone (exit 0 good, 2 bad, naming the key)",
		Long: `check reads FILE as sockwarden would, without the environment or flags,
and says whether it is good: exit 0, or exit 2 with each problem naming its
key ("diagnose.intervall: unknown key"). Run it before putting a file in
place or reloading the agent (systemctl reload sockwarden).`,
		Example:           `  sockwarden config check /etc/sockwarden/config.yaml.new && mv /etc/sockwarden/config.yaml.new /etc/sockwarden/config.yaml`,
		Args:              cobra.ExactArgs(1),
		Annotations:       map[string]string{noConfig: "true"},
		ValidArgsFunction: cobra.FixedCompletions(nil, cobra.ShellCompDirectiveFilterFileExt),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := config.Check(args[0]); err != nil {
				return withCode(exitUsage, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", args[0])
			return nil
		},
	}
}
