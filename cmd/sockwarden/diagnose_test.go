package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Whole-program golden test: `sockwarden diagnose --from BUNDLE` prints
// exactly the golden reports of the diagnose package for the bundles
// captured from the lab, in every format, and exits 1 (findings).
func TestDiagnoseFromBundleGolden(t *testing.T) {
	t.Chdir("../../diagnose")
	bundles, _ := filepath.Glob("testdata/bundles/*.tar.gz")
	if len(bundles) == 0 {
		t.Fatal("no bundle in diagnose/testdata/bundles")
	}
	for _, b := range bundles {
		name := "bundle-" + strings.TrimSuffix(filepath.Base(b), ".tar.gz")
		for format, ext := range map[string]string{"text": "txt", "markdown": "md", "json": "json"} {
			t.Run(name+"."+ext, func(t *testing.T) {
				out, errOut, code := runCLI(t, "diagnose", "--from", b, "--format", format)
				if code != exitFindings {
					t.Errorf("exit %d, want %d: %s", code, exitFindings, errOut)
				}
				if !strings.Contains(errOut, "reading bundle "+b) {
					t.Errorf("no progress on stderr: %q", errOut)
				}
				want, err := os.ReadFile(filepath.Join("testdata", "golden", name+"."+ext))
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(string(want), out); diff != "" {
					t.Errorf("(-golden +got):\n%s", diff)
				}
			})
		}
	}
}

func TestDiagnoseExitStatus(t *testing.T) {
	t.Chdir("../../diagnose")
	// A one-snapshot bundle: the last snapshot of a captured one.
	one := t.TempDir()
	if out, err := exec.Command("tar", "-xzf", "testdata/bundles/somaxconn-capped.tar.gz", "-C", one, "--exclude", "./1", "--exclude", "1").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	cases := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"healthy bundle", []string{"--from", "../sample/testdata/bundle/ns", "-q"}, exitOK, ""},
		{"findings", []string{"--from", "testdata/bundles/close-wait.tar.gz", "-q"}, exitFindings, ""},
		{"one snapshot", []string{"--from", one}, exitOK, "one snapshot: findings cannot be confirmed"},
		{"bad format", []string{"--from", "testdata/bundles/close-wait.tar.gz", "--format", "xml"}, exitUsage, `--format: "xml" is not one of text, markdown, json`},
		{"missing bundle", []string{"--from", "testdata/bundles/nope.tar.gz"}, exitUsage, "nope.tar.gz"},
		{"bundle and netns", []string{"--from", "testdata/bundles/close-wait.tar.gz", "--netns", "/run/netns/x"}, exitUsage, "--netns applies to live sampling only"},
		{"bundle and samples", []string{"--from", "testdata/bundles/close-wait.tar.gz", "--samples", "3"}, exitUsage, "--samples and --interval apply to live sampling"},
		{"bad samples", []string{"--samples", "0"}, exitUsage, "diagnose.samples: must be at least 1"},
		{"bad interval", []string{"--interval", "-1s"}, exitUsage, "diagnose.interval"},
		{"argument", []string{"extra"}, exitUsage, "unknown command"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runCLI(t, append([]string{"diagnose"}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tc.code, errOut)
			}
			if !strings.Contains(errOut, tc.stderr) {
				t.Errorf("stderr %q lacks %q", errOut, tc.stderr)
			}
			if tc.code == exitUsage && out != "" {
				t.Errorf("usage error printed a report: %q", out)
			}
		})
	}
}

// TestDiagnoseOneSnapshotJSON: a one-snapshot bundle gives findings that are
// unconfirmed and say why.
func TestDiagnoseOneSnapshotJSON(t *testing.T) {
	t.Chdir("../../diagnose")
	one := t.TempDir()
	if out, err := exec.Command("tar", "-xzf", "testdata/bundles/close-wait.tar.gz", "-C", one, "--exclude", "./1", "--exclude", "1").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	out, errOut, code := runCLI(t, "diagnose", "--from", one, "--format", "json", "-q")
	if code != exitFindings {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var r struct {
		Schema   string
		Samples  int
		Findings []struct {
			Kind, Side         string
			Confirmed          bool
			NotConfirmedReason string `json:"not_confirmed_reason"`
		}
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Schema != "sockwarden.report/v1" || r.Samples != 1 || len(r.Findings) == 0 {
		t.Fatalf("report %+v", r)
	}
	for _, f := range r.Findings {
		if f.Confirmed || !strings.HasPrefix(f.NotConfirmedReason, "one sample only") {
			t.Errorf("%s %s: confirmed %v, reason %q", f.Kind, f.Side, f.Confirmed, f.NotConfirmedReason)
		}
	}
}
