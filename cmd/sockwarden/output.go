package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// JSON schemas of the documents the commands print, besides the sample's,
// the report's and the agent status's (their packages name those). Each
// has a JSON Schema file in docs/schema/, checked against real output by
// TestOutputSchemas.
const (
	schemaProposals = "sockwarden.proposals/v1"
	schemaOutcome   = "sockwarden.outcome/v1"
	schemaOutcomes  = "sockwarden.outcomes/v1"
	schemaHistory   = "sockwarden.history/v1"
	schemaRecords   = "sockwarden.journal-records/v1"
	schemaVersion   = "sockwarden.version/v1"
	schemaScenarios = "sockwarden.lab-scenarios/v1"
)

// formatValue is the value of -o/--output: one of a fixed list.
type formatValue struct {
	target  *string
	allowed []string
	// alias maps another spelling to an allowed value ("md").
	alias map[string]string
}

func (f *formatValue) String() string { return *f.target }
func (f *formatValue) Type() string   { return "format" }
func (f *formatValue) Set(s string) error {
	if a, ok := f.alias[s]; ok {
		s = a
	}
	if !slices.Contains(f.allowed, s) {
		return fmt.Errorf("%q is not one of %s", s, strings.Join(f.allowed, ", "))
	}
	*f.target = s
	return nil
}

// jsonAlias is the old --json: a boolean flag that sets the format to json.
type jsonAlias struct{ target *string }

func (j jsonAlias) String() string   { return "false" }
func (j jsonAlias) Type() string     { return "bool" }
func (j jsonAlias) IsBoolFlag() bool { return true }
func (j jsonAlias) Set(s string) error {
	switch s {
	case "true":
		*j.target = "json"
	case "false":
	default:
		return fmt.Errorf("%q is not a boolean", s)
	}
	return nil
}

// outputFlag gives cmd the output convention of every command that prints
// data: -o/--output FORMAT (text by default, then the listed formats), with
// completion of its values, and the --json (and, for diagnose, --format)
// of earlier releases kept as deprecated aliases for one release.
func outputFlag(cmd *cobra.Command, formats ...string) *string {
	out := "text"
	allowed := append([]string{"text"}, formats...)
	v := &formatValue{target: &out, allowed: allowed, alias: map[string]string{"md": "markdown"}}
	f := cmd.Flags()
	f.VarP(v, "output", "o", "output format: "+strings.Join(allowed, ", "))
	cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(allowed, cobra.ShellCompDirectiveNoFileComp))
	if slices.Contains(formats, "json") {
		f.Var(jsonAlias{&out}, "json", "same as -o json")
		f.Lookup("json").NoOptDefVal = "true"
		deprecate(f, "json", "use -o json")
	}
	return &out
}

// deprecatedNote is the annotation of a flag kept for one release.
const deprecatedNote = "sockwarden/deprecated"

// deprecate hides flag name of fs from help and completion, and makes
// warnDeprecated say to use instead when it is given. Not pflag's
// MarkDeprecated: cobra prints its note on the command's output, which is
// stdout when a test or a wrapper sets one, and would spoil the JSON there.
func deprecate(fs *pflag.FlagSet, name, instead string) {
	fs.Lookup(name).Hidden = true
	if err := fs.SetAnnotation(name, deprecatedNote, []string{instead}); err != nil {
		panic(err) // programming error: no such flag
	}
}

// warnDeprecated writes one line on stderr per deprecated flag given.
func warnDeprecated(cmd *cobra.Command) {
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if n := f.Annotations[deprecatedNote]; len(n) == 1 {
			fmt.Fprintf(cmd.ErrOrStderr(), "sockwarden: --%s is deprecated and goes in the next release: %s\n", f.Name, n[0])
		}
	})
}

// jsonOutput is outputFlag for commands that print text or JSON and keep
// the choice in a bool.
func jsonOutput(cmd *cobra.Command, asJSON *bool) {
	format := outputFlag(cmd, "json")
	prev := cmd.PreRunE
	cmd.PreRunE = func(c *cobra.Command, args []string) error {
		*asJSON = *format == "json"
		if prev != nil {
			return prev(c, args)
		}
		return nil
	}
}

// writeJSON writes v as a json.Encoder with SetIndent("", "  ") does, byte
// for byte, in one write: every command's -o json but diagnose's (its
// report is written by diagnose.WriteJSON) goes through it.
// json.MarshalIndent sizes its indent buffer from the compact text where
// the Encoder grows its buffer from nothing, page after fresh page: for a
// 60 KB census, 2.6 -> 1.7 ms (median of 40 fresh processes) of a one-shot
// `sample -o json`.
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// listDoc is a JSON document holding one list, schema first:
// {"schema": ..., name: [...]}.
type listDoc struct {
	schema, name string
	list         any
}

func docOf(schema, name string, list any) listDoc { return listDoc{schema, name, list} }

func (d listDoc) MarshalJSON() ([]byte, error) {
	l, err := json.Marshal(d.list)
	if err != nil {
		return nil, err
	}
	s, _ := json.Marshal(d.schema)
	n, _ := json.Marshal(d.name)
	return fmt.Appendf(nil, `{"schema":%s,%s:%s}`, s, n, l), nil
}
