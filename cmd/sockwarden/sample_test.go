package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/internal/netns"
	"github.com/sockwarden/sockwarden/sample"
)

// runCLI runs the root command with args and returns stdout, stderr and the
// exit code run() would return.
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return runCLIIn(t, nil, args...)
}

// runCLIIn is runCLI with stdin read from in, or the process's own when
// in is nil.
func runCLIIn(t *testing.T, in io.Reader, args ...string) (string, string, int) {
	t.Helper()
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	if in != nil {
		root.SetIn(in)
	}
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("# defaults\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	root.SetArgs(append([]string{"--config", cfg}, args...))
	err := root.Execute()
	code := exitOK
	if err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		} else {
			code = exitUsage
		}
		errb.WriteString(err.Error())
	}
	return out.String(), errb.String(), code
}

// Whole-program golden test: `sockwarden sample --from BUNDLE` prints the
// text the sample package's golden file holds.
func TestSampleFromBundleGolden(t *testing.T) {
	t.Chdir("../../sample")
	out, errOut, code := runCLI(t, "sample", "--from", "testdata/bundle/ns")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want, err := os.ReadFile("testdata/text/bundle-ns.golden")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), out); diff != "" {
		t.Errorf("(-golden +got):\n%s", diff)
	}
}

func TestSampleFromBundleJSON(t *testing.T) {
	out, errOut, code := runCLI(t, "sample", "--json", "--from", "../../sample/testdata/bundle/ns")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	dec := json.NewDecoder(strings.NewReader(out))
	var got []sample.Sample
	for {
		var s sample.Sample
		if err := dec.Decode(&s); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	if len(got) != 2 || got[0].Schema != sample.Schema || got[1].States[sample.StateListen] != 9 || got[0].Sysctls["net.ipv4.ip_local_port_range"] != "32768 60999" {
		t.Fatalf("got %d samples: %+v", len(got), got)
	}
}

// The JSON stream is byte for byte what json.Encoder with a two-space
// indent writes (what writeJSON was before it used MarshalIndent): scripts
// and diffs of earlier output see no change.
func TestSampleJSONBytes(t *testing.T) {
	const bundle = "../../sample/testdata/bundle/ns"
	out, errOut, code := runCLI(t, "sample", "-o", "json", "--from", bundle)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	series, err := sample.FromInput(bundle, nil, sample.OptionsFrom(config.Defaults().Sample, "", zap.NewNop()))
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	enc.SetIndent("", "  ")
	for _, s := range series {
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
	}
	if len(series) != 2 || want.String() != out {
		t.Errorf("%d samples; output differs from json.Encoder's (-encoder +got):\n%s", len(series), cmp.Diff(want.String(), out))
	}
}

// writeJSON, which every command's -o json goes through (status's with an
// embedded struct, the lists' with listDoc), writes json.Encoder's bytes:
// the same escaping of <, > and &, the same empty and nil values, the
// final newline.
func TestWriteJSONSameAsEncoder(t *testing.T) {
	type inner struct {
		A string `json:"a"`
	}
	for _, v := range []any{
		struct {
			inner
			P *inner         `json:"p"`
			M map[string]int `json:"m"`
			L []string       `json:"l"`
			E []string       `json:"e"`
		}{inner{"<b> & \u2028"}, nil, map[string]int{"z": 1, "a": 2}, nil, []string{}},
		docOf(schemaProposals, "proposals", []inner{{"x"}}),
		"plain",
	} {
		var want, got bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		if err := writeJSON(&got, v); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want.String(), got.String()); diff != "" {
			t.Errorf("%T: (-encoder +writeJSON):\n%s", v, diff)
		}
	}
}

func TestSampleCollectUsage(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad")
	if err := os.MkdirAll(bad, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, "ss-tan.txt"), []byte("net.core.somaxconn = 4096\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"sample", "--from", bad}, exitUsage, "ss-tan.txt: line 1: not ss socket output"},
		{[]string{"sample", "--from", "/nonexistent/bundle.tar.gz"}, exitUsage, "no such file"},
		{[]string{"sample", "--from", bad, "--netns", "/run/netns/x"}, exitUsage, "--netns applies to live sampling only"},
		{[]string{"sample", "extra"}, exitUsage, "unknown command"},
		{[]string{"collect"}, exitUsage, "accepts 1 arg"},
		{[]string{"collect", "--snapshots", "0", "x.tar.gz"}, exitUsage, "--snapshots must be between 1 and 100"},
		{[]string{"collect", "--gap", "-1s", "x.tar.gz"}, exitUsage, "--gap must not be negative"},
		{[]string{"collect", "--netns", "/nonexistent/ns", "--snapshots", "1", filepath.Join(t.TempDir(), "o.tar.gz")}, exitUsage, "/nonexistent/ns does not exist"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, errOut, code := runCLI(t, tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errOut, tt.code, tt.want)
			}
		})
	}
}

// `sockwarden collect --netns` captures that namespace's sockets, and
// `sockwarden sample --from` reads them back: a listener with a queue made
// in the namespace is in the bundle with its Recv-Q and owner.
func TestNetnsCollectThenSampleCLI(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	path, release, err := netns.New(fmt.Sprintf("sw-clicollect-%d", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	var port int
	err = netns.Do(path, func() error {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return err
		}
		t.Cleanup(func() { l.Close() })
		port = l.Addr().(*net.TCPAddr).Port
		for range 2 {
			c, err := net.Dial("tcp4", l.Addr().String())
			if err != nil {
				return err
			}
			t.Cleanup(func() { c.Close() })
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "b.tar.gz")
	if _, errOut, code := runCLI(t, "--netns", path, "collect", "--snapshots", "1", out); code != exitOK {
		t.Fatalf("collect: exit %d: %s", code, errOut)
	}
	if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("bundle %v, %v; want mode 0600", st, err)
	}
	js, errOut, code := runCLI(t, "sample", "-o", "json", "--from", out)
	if code != exitOK {
		t.Fatalf("sample: exit %d: %s", code, errOut)
	}
	var s sample.Sample
	if err := json.Unmarshal([]byte(js), &s); err != nil {
		t.Fatal(err)
	}
	l := s.Listener(fmt.Sprintf("127.0.0.1:%d", port))
	if l == nil || l.RecvQ != 2 || len(l.Owners) != 1 || l.Owners[0].PID != os.Getpid() || s.States[sample.StateEstab] != 4 || s.Netns != path {
		t.Fatalf("listener %+v, states %v, netns %q", l, s.States, s.Netns)
	}
}
