package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// versionInfo is what `sockwarden version -o json` prints: the release
// (set with -ldflags "-X main.version=..."), and the commit, its date and
// the Go toolchain, read from the build info Go embeds in every binary
// built from a git checkout (vcs.revision, vcs.time, vcs.modified).
type versionInfo struct {
	Schema   string `json:"schema"`
	Version  string `json:"version"`
	Commit   string `json:"commit"`
	Date     string `json:"date"`
	Modified bool   `json:"modified"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

func buildVersion() versionInfo {
	bi, _ := debug.ReadBuildInfo()
	return versionFrom(bi)
}

// versionFrom reads the version of build info bi (nil: none). A binary
// built outside a git checkout, or with -buildvcs=false, has no commit.
func versionFrom(bi *debug.BuildInfo) versionInfo {
	v := versionInfo{Schema: schemaVersion, Version: version, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi == nil {
		return v
	}
	if bi.GoVersion != "" {
		v.Go = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.Date = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// line is the one-line version, as --version and `version` print it.
func (v versionInfo) line() string {
	s := "sockwarden " + v.Version
	if v.Commit != "" {
		c := v.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		if v.Modified {
			c += "-dirty"
		}
		s += " (commit " + c
		if v.Date != "" {
			s += ", " + v.Date
		}
		s += ")"
	}
	return s + " " + v.Go + " " + v.Platform
}

func newVersionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, build date and Go version",
		Long: `version prints the release, the commit and its date and the Go toolchain
the binary was built with (from its build info). It reads no configuration:
a bad config file or environment does not stop it.`,
		Args:        cobra.NoArgs,
		Annotations: map[string]string{noConfig: "true"},
	}
	format := outputFlag(cmd, "json")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return writeVersion(cmd.OutOrStdout(), buildVersion(), *format)
	}
	return cmd
}

func writeVersion(w io.Writer, v versionInfo, format string) error {
	if format == "json" {
		return writeJSON(w, v)
	}
	_, err := fmt.Fprintln(w, v.line())
	return err
}
