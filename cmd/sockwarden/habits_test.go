package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/sockwarden/sockwarden/remediate"
)

// TestVersionFlags: --version, -V and version print the same line; version
// -o json has the Go version and the platform.
func TestVersionFlags(t *testing.T) {
	want, _, _ := runCLI(t, "version")
	if !strings.HasPrefix(want, "sockwarden ") || !strings.Contains(want, " go1.") {
		t.Fatalf("version: %q", want)
	}
	for _, args := range [][]string{{"--version"}, {"-V"}} {
		if out, errOut, code := runCLI(t, args...); code != exitOK || out != want {
			t.Errorf("%v: exit %d, %q %s; want %q", args, code, out, errOut, want)
		}
	}
	out, _, code := runCLI(t, "version", "-o", "json")
	var v versionInfo
	if code != exitOK || json.Unmarshal([]byte(out), &v) != nil || v.Schema != schemaVersion || !strings.HasPrefix(v.Go, "go1.") || v.Platform == "" {
		t.Fatalf("version -o json: exit %d, %q", code, out)
	}
}

// TestVersionFromBuildInfo: commit, date and the dirty mark come from the
// build info's vcs settings.
func TestVersionFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Settings: []debug.BuildSetting{
		{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "240e00ce3915a1acb84309892201e72b71c663c6"},
		{Key: "vcs.time", Value: "2026-12-06T02:00:00Z"}, {Key: "vcs.modified", Value: "true"},
	}}
	v := versionFrom(bi)
	if v.Commit != "240e00ce3915a1acb84309892201e72b71c663c6" || v.Date != "2026-12-06T02:00:00Z" || !v.Modified || v.Go != "go1.26.8" {
		t.Fatalf("versionFrom: %+v", v)
	}
	if l := v.line(); !strings.Contains(l, "(commit 240e00ce3915-dirty, 2026-12-06T02:00:00Z) go1.26.8") {
		t.Errorf("line %q", l)
	}
	if v := versionFrom(nil); v.Commit != "" || v.Go == "" {
		t.Errorf("no build info: %+v", v)
	}
}

// TestNoConfigCommands: a bad config file or a stray SOCKWARDEN_* variable
// does not break version, help, completion or config check; it still stops
// a command that needs the configuration, naming the problem.
func TestNoConfigCommands(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("diagnose:\n  intervall: 2s\n"), 0o600)
	good := filepath.Join(t.TempDir(), "good.yaml")
	os.WriteFile(good, []byte("diagnose:\n  samples: 3\n"), 0o600)
	for _, setup := range []struct {
		name string
		env  string
		cfg  string
		want string
	}{
		{"bad file", "", bad, "diagnose.intervall: unknown key"},
		{"stray variable", "SOCKWARDEN_NOT_A_KEY", good, "SOCKWARDEN_NOT_A_KEY is not a sockwarden setting"},
	} {
		t.Run(setup.name, func(t *testing.T) {
			if setup.env != "" {
				t.Setenv(setup.env, "1")
			}
			for _, args := range [][]string{{"version"}, {"--version"}, {"version", "-o", "json"}, {"help"}, {"help", "diagnose"}, {"diagnose", "--help"},
				{"completion", "bash"}, {"__complete", "diagnose", "-o", ""}, {"config", "check", good}} {
				if out, errOut, code := runCLI(t, append([]string{"--config", setup.cfg}, args...)...); code != exitOK || out == "" {
					t.Errorf("%v: exit %d, stdout %d bytes; stderr %q", args, code, len(out), errOut)
				}
			}
			_, errOut, code := runCLI(t, "--config", setup.cfg, "history", "--state-dir", t.TempDir())
			if code != exitUsage || !strings.Contains(errOut, setup.want) {
				t.Errorf("history: exit %d, %q; want exit 2 naming %q", code, errOut, setup.want)
			}
		})
	}
}

// TestConfigCommands: config check exits 0 or 2 naming the key; config
// show says where each value came from.
func TestConfigCommands(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("agent:\n  mode: yolo\n"), 0o600)
	good := filepath.Join(t.TempDir(), "good.yaml")
	os.WriteFile(good, []byte("diagnose:\n  samples: 3\n"), 0o600)
	if out, errOut, code := runCLI(t, "config", "check", good); code != exitOK || out != good+": ok\n" {
		t.Errorf("check good: exit %d, %q %q", code, out, errOut)
	}
	if _, errOut, code := runCLI(t, "config", "check", bad); code != exitUsage || !strings.Contains(errOut, "agent.mode") {
		t.Errorf("check bad: exit %d, %q; want 2 naming agent.mode", code, errOut)
	}
	if _, _, code := runCLI(t, "config", "check", filepath.Join(t.TempDir(), "absent.yaml")); code != exitUsage {
		t.Errorf("check absent file: exit %d, want 2", code)
	}
	t.Setenv("SOCKWARDEN_AGENT_MODE", "observe")
	out, errOut, code := runCLI(t, "--config", good, "config", "show", "--log-level", "warn")
	if code != exitOK {
		t.Fatalf("show: exit %d: %s", code, errOut)
	}
	for _, line := range []string{
		`diagnose.samples\s+file\s+3`, `agent.mode\s+env SOCKWARDEN_AGENT_MODE\s+observe`,
		`log_level\s+flag --log-level\s+warn`, `agent.tick\s+default\s+10s`,
	} {
		if !regexpMatch(line, out) {
			t.Errorf("config show lacks %q:\n%s", line, out)
		}
	}
}

// TestCompletionValues: formats, modes, scenarios and the ids in the state
// dir complete.
func TestCompletionValues(t *testing.T) {
	dir, id := recordProposal(t)
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"diagnose", "-o", ""}, []string{"text", "markdown", "json"}},
		{[]string{"history", "-o", ""}, []string{"text", "json"}},
		{[]string{"agent", "--mode", ""}, []string{"observe", "propose", "auto"}},
		{[]string{"--log-level", ""}, []string{"debug", "info", "warn", "error"}},
		{[]string{"lab", "run", ""}, []string{"somaxconn-capped\t", "close-wait\t"}},
		{[]string{"approve", "--state-dir", dir, ""}, []string{id + "\taccept-queue-overflow on 127.0.0.1:8080: net.core.somaxconn 128->1024"}},
		{[]string{"apply", "--state-dir", dir, ""}, []string{id + "\t"}},
	}
	for _, tc := range tests {
		out, errOut, code := runCLI(t, append([]string{"__complete"}, tc.args...)...)
		if code != exitOK {
			t.Fatalf("%v: exit %d: %s", tc.args, code, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("completing %v: %q lacks %q", tc.args, out, w)
			}
		}
	}
	// rollback completes the changes still open to a rollback, not the
	// closed ones.
	j, err := remediate.OpenJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	vals := []remediate.Value{{Key: "net.core.somaxconn", Old: "128", New: "1024"}}
	for _, r := range []remediate.Record{
		{Change: "c-kept", Proposal: id, State: remediate.StateApplying, Values: vals},
		{Change: "c-kept", Proposal: id, State: remediate.StateVerified},
		{Change: "c-undone", Proposal: id, State: remediate.StateApplying, Values: vals},
		{Change: "c-undone", Proposal: id, State: remediate.StateRolledBack},
	} {
		if err := j.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	out, _, _ := runCLI(t, "__complete", "rollback", "--state-dir", dir, "")
	if !strings.Contains(out, "c-kept\tverified net.core.somaxconn 128->1024") || strings.Contains(out, "c-undone") {
		t.Errorf("completing rollback: %q; want c-kept only", out)
	}

	// A state dir that does not exist completes nothing and is not made.
	none := filepath.Join(t.TempDir(), "none")
	if out, _, _ := runCLI(t, "__complete", "approve", "--state-dir", none, ""); strings.Contains(out, "\t") {
		t.Errorf("ids from a missing state dir: %q", out)
	}
	if _, err := os.Stat(none); err == nil {
		t.Errorf("completion created %s", none)
	}
}

// TestCountdown: the countdown writes on a terminal only, and clears its
// line when stopped.
func TestCountdown(t *testing.T) {
	var b bytes.Buffer
	countdown(&b, "sampling", time.Second)()
	if b.Len() != 0 {
		t.Fatalf("countdown to a buffer (not a terminal) wrote %q", b.String())
	}
	var mu syncBuffer
	stop := startCountdown(&mu, "sampling", 3*time.Second, 5*time.Millisecond)
	time.Sleep(30 * time.Millisecond)
	stop()
	out := mu.String()
	if !strings.Contains(out, "\r\033[Ksampling: 3s left") || !strings.HasSuffix(out, "\r\033[K") {
		t.Errorf("countdown wrote %q", out)
	}
}

// TestHelperCLI is not a test: TestInterruptExits130 runs the test binary
// as the sockwarden command through it.
func TestHelperCLI(t *testing.T) {
	args := os.Getenv("SWTEST_CLI_ARGS")
	if args == "" {
		t.Skip("helper process only")
	}
	os.Exit(run(strings.Fields(args)))
}

// TestInterruptExits130: Ctrl-C during a live diagnosis exits 130, as a
// shell expects, without "context canceled" on stderr.
func TestInterruptExits130(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCLI$")
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(cfg, []byte("# defaults\n"), 0o600)
	cmd.Env = append(os.Environ(), "SWTEST_CLI_ARGS=--config "+cfg+" diagnose --samples 3 --interval 10s")
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stderr.String(), "sampling ") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	code := cmd.ProcessState.ExitCode()
	if code != 130 || strings.Contains(stderr.String(), "context canceled") {
		t.Fatalf("after SIGINT: exit %d (%v), stderr %q; want 130 without \"context canceled\"", code, err, stderr.String())
	}
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func regexpMatch(re, s string) bool { return regexp.MustCompile("(?m)^" + re).MatchString(s) }

// TestOutputFlagEverywhere: every command that prints data takes -o, with
// its formats; commands that print only a confirmation or progress do not
// pretend to. A new command must be put in one list or the other.
func TestOutputFlagEverywhere(t *testing.T) {
	withOutput := map[string]string{
		"sample": "text, json", "diagnose": "text, markdown, json", "status": "text, json", "propose": "text, json",
		"proposals": "text, json", "apply": "text, json", "rollback": "text, json", "resolve": "text, json",
		"history": "text, json", "lab list": "text, json", "version": "text, json", "config show": "text, json",
		"fleet proposals": "text, json", "fleet status": "text, json, markdown", "fleet hosts": "text, json",
	}
	without := map[string]bool{"agent": true, "approve": true, "deny": true, "collect": true, "lab run": true,
		"lab clean": true, "config check": true, "gen-man": true, "fleet approve": true, "fleet halt": true, "fleet pause": true,
		"fleet resume": true, "fleet rollback": true, "fleet setup-roles": true}
	root := newRootCmd()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		if !c.Runnable() || c == root {
			return
		}
		path := strings.TrimPrefix(c.CommandPath(), "sockwarden ")
		f := c.Flags().Lookup("output")
		switch {
		case withOutput[path] != "":
			if f == nil || f.Shorthand != "o" || !strings.HasSuffix(f.Usage, withOutput[path]) {
				t.Errorf("%s: -o/--output %v, want formats %s", path, f, withOutput[path])
			}
			delete(withOutput, path)
		case without[path]:
			if f != nil {
				t.Errorf("%s prints no data but has --output", path)
			}
		default:
			t.Errorf("command %q: say whether it prints data (withOutput) or not (without)", path)
		}
	}
	walk(root)
	for path := range withOutput {
		t.Errorf("command %q not found", path)
	}
}
