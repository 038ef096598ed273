package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// flagSet merges the command's own flags and the inherited persistent ones,
// so config.Load sees every flag the user set.
func flagSet(cmd *cobra.Command) *pflag.FlagSet {
	fs := pflag.NewFlagSet(cmd.Name(), pflag.ContinueOnError)
	fs.AddFlagSet(cmd.Flags())
	fs.AddFlagSet(cmd.InheritedFlags())
	return fs
}
