//go:build !sockwarden_lean

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// The generated page names every visible command and every flag, holds
// the hand-written sections, and escapes what roff would read as requests.
func TestGenManCoversEveryCommandAndFlag(t *testing.T) {
	out := filepath.Join(t.TempDir(), "sockwarden.8")
	root := newRootCmd()
	root.SetArgs([]string{"gen-man", out, "--sections", "../../packaging/man/sockwarden.sections.8", "--date", "2026-01-02"})
	root.SetOut(&bytes.Buffer{})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	// roff spells '-' as '\-'; undo it to look for names.
	plain := strings.ReplaceAll(page, `\-`, "-")
	var check func(c *cobra.Command)
	check = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if !sub.IsAvailableCommand() || sub.IsAdditionalHelpTopicCommand() {
				if sub.Name() == "gen-man" && strings.Contains(plain, ".SS \"gen-man") {
					t.Error("the hidden gen-man command is on the page")
				}
				continue
			}
			path := strings.TrimPrefix(sub.CommandPath(), "sockwarden ")
			if !strings.Contains(plain, ".SS \""+path+"\"\n") {
				t.Errorf("no section for command %q", path)
			}
			sub.NonInheritedFlags().VisitAll(func(f *pflag.Flag) {
				if !f.Hidden && f.Deprecated == "" && !strings.Contains(plain, `\fB--`+f.Name+`\fR`) {
					t.Errorf("command %q: flag --%s is not on the page", path, f.Name)
				}
			})
			check(sub)
		}
	}
	check(root)
	for _, want := range []string{".TH SOCKWARDEN 8 2026-01-02", ".SH ENVIRONMENT", ".SH FILES", ".SH EXIT STATUS", ".SH METRICS", ".SH SEE ALSO"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for i, l := range strings.Split(page, "\n") {
		if strings.HasPrefix(l, "'") {
			t.Errorf("line %d starts with a quote, a roff request: %q", i+1, l)
		}
	}
}
