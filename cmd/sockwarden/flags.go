package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// flagSet returns the flags config.Load must see: the command's own and the
// inherited persistent ones. cobra merges the parents' persistent flags into
// cmd.Flags() when it parses, and only that set remembers which flags were
// given (pflag's Visit walks the set flags only; a copy made with AddFlagSet
// forgets them, and with it every --netns, --state-dir, ...).
func flagSet(cmd *cobra.Command) *pflag.FlagSet {
	return cmd.Flags()
}
