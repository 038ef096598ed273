// Package packaging holds the files the deb and rpm install (unit, config,
// tmpfiles.d, man page) and the tests that keep them honest.
package packaging

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sockwarden/sockwarden/config"
)

// settingLine matches a commented-out setting ("#  key: value", "#    - item"):
// '#' directly followed by the YAML indentation. Prose comments have a space
// and then text that is not a lower-case key with a colon.
var settingLine = regexp.MustCompile(`^#( *)([a-z0-9_]+:.*|- .*)$`)

// uncomment turns the shipped file into the YAML it documents.
func uncomment(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if m := settingLine.FindStringSubmatch(line); m != nil {
			out = append(out, m[1]+m[2])
		}
	}
	return strings.Join(out, "\n") + "\n"
}

// The default config shows every key, commented, with its real default.
func TestDefaultConfigShowsEveryKeyWithItsDefault(t *testing.T) {
	yaml := uncomment(t, "config.yaml")
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := config.Load(config.Options{File: path, Env: []string{}})
	if err != nil {
		t.Fatalf("the uncommented default config does not load: %v\n%s", err, yaml)
	}
	want := config.Defaults()
	want.File = path
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("packaging/config.yaml defaults differ from config.Defaults() (-want +got):\n%s", diff)
	}
	for _, k := range config.Keys() {
		leaf := k[strings.LastIndex(k, ".")+1:]
		if !regexp.MustCompile(`(?m)^#\s*` + regexp.QuoteMeta(leaf) + `:`).MatchString(mustRead(t, "config.yaml")) {
			t.Errorf("packaging/config.yaml does not show key %s", k)
		}
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The unit and tmpfiles agree with the config defaults on where things live.
func TestUnitMatchesDefaults(t *testing.T) {
	unit := mustRead(t, "sockwarden.service")
	def := config.Defaults()
	for _, want := range []string{
		"Type=notify", "WatchdogSec=", "NoNewPrivileges=yes", "ProtectSystem=strict",
		"ReadWritePaths=/proc/sys/net", "PrivateTmp=yes",
		"StateDirectory=" + filepath.Base(def.StateDir),
		"RuntimeDirectory=" + filepath.Base(filepath.Dir(def.Agent.ControlSocket)),
		"ExecReload=/bin/sh -c 'kill -HUP $MAINPID'",
	} {
		if !strings.Contains(unit, want+"\n") && !strings.Contains(unit, want) {
			t.Errorf("sockwarden.service lacks %q", want)
		}
	}
	tmpfiles := mustRead(t, "tmpfiles.d/sockwarden.conf")
	for _, dir := range []string{def.StateDir, filepath.Dir(def.Agent.ControlSocket)} {
		if !regexp.MustCompile(`(?m)^d\s+` + regexp.QuoteMeta(dir) + `\s+0700\s+root\s+root`).MatchString(tmpfiles) {
			t.Errorf("tmpfiles.d/sockwarden.conf does not create %s 0700 root root", dir)
		}
	}
}
