package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
)

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultsWhenFileAbsent(t *testing.T) {
	// Not the machine's /etc/sockwarden/config.yaml, which a host with
	// the package installed has: this test checked nothing there.
	defer func(p string) { defaultPath = p }(defaultPath)
	defaultPath = filepath.Join(t.TempDir(), "config.yaml")
	c, err := Load(Options{File: "", Env: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Defaults(), c); diff != "" {
		t.Fatalf("(-want +got)\n%s", diff)
	}
}

// layered is a configuration set in every layer, for the precedence
// tests of Load and Explain: the file sets diagnose.interval (2s),
// diagnose.samples (3) and agent.mode (observe); the environment sets
// agent.mode again (auto) and a flag diagnose.samples (--samples=4).
// p is the file's path.
func layered(t *testing.T) (opts Options, p string) {
	t.Helper()
	p = write(t, "diagnose:\n  interval: 2s\n  samples: 3\nagent:\n  mode: observe\n")
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	fs.Int("samples", 0, "")
	BindFlag(fs, "samples", "diagnose.samples")
	if err := fs.Parse([]string{"--samples=4"}); err != nil {
		t.Fatal(err)
	}
	return Options{File: p, Flags: fs, Env: []string{"SOCKWARDEN_AGENT_MODE=auto", "PATH=/bin"}}, p
}

func TestPrecedence(t *testing.T) {
	opts, p := layered(t)
	c, err := Load(opts)
	if err != nil {
		t.Fatal(err)
	}
	if c.Diagnose.Interval != 2*time.Second {
		t.Errorf("interval from file: got %s", c.Diagnose.Interval)
	}
	if c.Diagnose.Samples != 4 {
		t.Errorf("samples from flag: got %d", c.Diagnose.Samples)
	}
	if c.Agent.Mode != "auto" {
		t.Errorf("mode from env: got %q", c.Agent.Mode)
	}
	if c.File != p {
		t.Errorf("File = %q", c.File)
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		env        []string
		want       string
	}{
		{"unknown key", "diagnose:\n  intervall: 2s\n", nil, "intervall"},
		{"unknown section", "bogus: 1\n", nil, "bogus"},
		{"bad duration", "diagnose:\n  interval: soon\n", nil, "interval"},
		{"bad mode", "agent:\n  mode: yolo\n", nil, "agent.mode"},
		{"bad ratio", "diagnose:\n  port_use_ratio: 2\n", nil, "diagnose.port_use_ratio"},
		{"bad yaml", "diagnose: [\n", nil, "config.yaml"},
		{"unknown env", "", []string{"SOCKWARDEN_NOPE=1"}, "SOCKWARDEN_NOPE"},
		{"bad env value", "", []string{"SOCKWARDEN_VERIFY_WINDOW=-1s"}, "verify.window"},
		{"etcd endpoint without scheme", "fleet:\n  etcd:\n    endpoints: [etcd1:2379]\n", nil, "fleet.etcd.endpoints[0]"},
		{"etcd endpoint without port", "", []string{"SOCKWARDEN_FLEET_ETCD_ENDPOINTS=http://a:2379,https://b"}, "fleet.etcd.endpoints[1]"},
		{"etcd prefix", "fleet:\n  etcd:\n    prefix: sockwarden\n", nil, "fleet.etcd.prefix"},
		{"etcd request timeout", "", []string{"SOCKWARDEN_FLEET_ETCD_REQUEST_TIMEOUT=0s"}, "fleet.etcd.request_timeout"},
		{"etcd dial timeout", "fleet:\n  etcd:\n    dial_timeout: -1s\n", nil, "fleet.etcd.dial_timeout"},
		{"etcd password in config", "fleet:\n  etcd:\n    password: hunter2\n", nil, "fleet.etcd.password: unknown key"},
		{"etcd username without file", "fleet:\n  etcd:\n    username: sw\n", nil, "fleet.etcd.password_file"},
		{"etcd relative password file", "fleet:\n  etcd:\n    username: sw\n    password_file: pw\n", nil, "fleet.etcd.password_file"},
		{"etcd cert without key", "fleet:\n  etcd:\n    endpoints: [https://e:2379]\n    tls:\n      cert: /etc/c.pem\n", nil, "fleet.etcd.tls.key"},
		{"etcd tls over http", "fleet:\n  etcd:\n    endpoints: [http://e:2379]\n    tls:\n      ca: /etc/ca.pem\n", nil, "https://"},
		{"max concurrent", "fleet:\n  max_concurrent: 0\n", nil, "fleet.max_concurrent"},
		{"slot ttl", "", []string{"SOCKWARDEN_FLEET_SLOT_TTL=1s"}, "fleet.slot_ttl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := tc.env
			if env == nil {
				env = []string{}
			}
			_, err := Load(Options{File: write(t, tc.yaml), Env: env})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want error naming %q, got %v", tc.want, err)
			}
		})
	}
}

func TestExplicitMissingFile(t *testing.T) {
	_, err := Load(Options{File: "/nonexistent/sw.yaml", Env: []string{}})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/sw.yaml") {
		t.Fatalf("got %v", err)
	}
}

func TestKeysCoverSections(t *testing.T) {
	keys := strings.Join(Keys(), " ")
	for _, k := range []string{"diagnose.interval", "agent.mode", "remediate.allowlist", "metrics.listen", "state_dir"} {
		if !strings.Contains(keys, k) {
			t.Errorf("Keys() lacks %s", k)
		}
	}
}

func TestFleetFromEnvironment(t *testing.T) {
	c, err := Load(Options{File: write(t, "fleet:\n  max_concurrent: 3\n"), Env: []string{
		"SOCKWARDEN_FLEET_ETCD_ENDPOINTS=https://etcd1:2379,https://etcd2:2379",
		"SOCKWARDEN_FLEET_ETCD_TLS_CA=/etc/sockwarden/etcd-ca.pem",
		"SOCKWARDEN_FLEET_SLOT_TTL=45s",
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := Defaults().Fleet
	want.Etcd.Endpoints = []string{"https://etcd1:2379", "https://etcd2:2379"}
	want.Etcd.TLS.CA = "/etc/sockwarden/etcd-ca.pem"
	want.MaxConcurrent, want.SlotTTL = 3, 45*time.Second
	if diff := cmp.Diff(want, c.Fleet); diff != "" {
		t.Fatalf("(-want +got)\n%s", diff)
	}
	if !c.Fleet.Enabled() || Defaults().Fleet.Enabled() {
		t.Fatal("Enabled: want true with endpoints, false by default")
	}
}
