//go:build !sockwarden_lean

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.uber.org/zap"

	"github.com/sockwarden/sockwarden/agent"
	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/remediate"
)

// schemas compiles every JSON Schema in docs/schema and returns them by
// the "schema" value their documents carry (the const of their "schema"
// property), so that a document is checked against the file its own
// schema field names.
func schemas(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	files, _ := filepath.Glob("../../docs/schema/*.json")
	if len(files) == 0 {
		t.Fatal("no schema in docs/schema")
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	out := map[string]*jsonschema.Schema{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var head struct {
			Properties struct {
				Schema struct {
					Const string `json:"const"`
				} `json:"schema"`
			} `json:"properties"`
		}
		if err := json.Unmarshal(b, &head); err != nil || head.Properties.Schema.Const == "" {
			t.Fatalf("%s: no properties.schema.const naming the documents it describes (%v)", f, err)
		}
		url := "file://" + f
		if err := c.AddResource(url, doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		s, err := c.Compile(url)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if _, dup := out[head.Properties.Schema.Const]; dup {
			t.Fatalf("%s: a second file for %s", f, head.Properties.Schema.Const)
		}
		out[head.Properties.Schema.Const] = s
	}
	return out
}

// validate checks every JSON document of out (one, or a stream) against the
// schema its "schema" field names, and returns the schema names seen.
func validate(t *testing.T, what, out string, all map[string]*jsonschema.Schema) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	var seen []string
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("%s: not JSON: %v\n%s", what, err, out)
		}
		var head struct {
			Schema string `json:"schema"`
		}
		if err := json.Unmarshal(raw, &head); err != nil || head.Schema == "" {
			t.Fatalf("%s: a document without \"schema\": %.200s", what, raw)
		}
		s := all[head.Schema]
		if s == nil {
			t.Fatalf("%s: schema %q has no file in docs/schema", what, head.Schema)
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(inst); err != nil {
			t.Errorf("%s: does not match %s:\n%v", what, head.Schema, err)
		}
		seen = append(seen, head.Schema)
	}
	if len(seen) == 0 {
		t.Fatalf("%s: no JSON document on stdout", what)
	}
	return seen
}

// TestOutputSchemas runs the commands that print JSON on real input (the
// lab's captured bundles, a state dir with a recorded proposal, a refused
// apply, a live agent's control socket) and validates every document
// against its JSON Schema in docs/schema. Every schema file must be used.
func TestOutputSchemas(t *testing.T) {
	all := schemas(t)
	used := map[string]bool{}
	// run runs the command; exitFindings accepts exitOK too (a bundle
	// may be healthy).
	run := func(what string, wantCode int, args ...string) {
		t.Helper()
		out, errOut, code := runCLI(t, args...)
		if code != wantCode && !(wantCode == exitFindings && code == exitOK) {
			t.Fatalf("%s: exit %d, want %d: %s", what, code, wantCode, errOut)
		}
		for _, s := range validate(t, what, out, all) {
			used[s] = true
		}
	}

	bundles, _ := filepath.Glob("../../testdata/bundles/*.tar.gz")
	if len(bundles) == 0 {
		t.Fatal("no lab bundle")
	}
	for _, b := range bundles {
		run("diagnose "+filepath.Base(b), exitFindings, "diagnose", "--from", b, "-o", "json", "-q")
	}
	// One snapshot (no interval_seconds), a symptom answer, a paste.
	run("diagnose with a symptom and a port", exitFindings, "diagnose", "--from", bundles[0], "--symptom", "refused", "--port", "9999", "-o", "json", "-q")
	run("diagnose of a pasted capture", exitFindings, "diagnose", "--from", "../../testdata/corpus/30-ufw-and-netstat-ltn-loopback-8000.txt", "--port", "8000", "-o", "json", "-q")
	run("sample of a lab bundle", exitOK, "sample", "--from", bundles[0], "-o", "json")
	run("sample of the sample package's bundle", exitOK, "sample", "--from", "../../sample/testdata/bundle/ns", "-o", "json")
	// Pastes carry what bundles do not: the blocks read, and the
	// application log lines of EADDRNOTAVAIL and EMFILE.
	run("sample of a paste with EADDRNOTAVAIL lines", exitOK, "sample", "--from", "../../testdata/corpus/48-redis-benchmark-eaddrnotavail-awk-time-wait-ardb.txt", "-o", "json")
	run("sample of a paste with EMFILE lines", exitOK, "sample", "--from", "../../testdata/corpus/57-go-accept4-emfile-sia.txt", "-o", "json")

	run("version", exitOK, "version", "-o", "json")
	t.Setenv("SOCKWARDEN_AGENT_MODE", "observe")
	run("config show", exitOK, "config", "show", "-o", "json", "--state-dir", "/var/tmp/sw")
	run("lab list", exitOK, "lab", "list", "-o", "json")

	empty := filepath.Join(t.TempDir(), "state")
	run("history, empty journal", exitOK, "history", "-o", "json", "--state-dir", empty)
	run("history records, empty journal", exitOK, "history", "--records", "-o", "json", "--state-dir", empty)
	run("proposals, none", exitOK, "proposals", "-o", "json", "--state-dir", empty)
	run("resolve, nothing", exitOK, "resolve", "-o", "json", "--state-dir", empty)

	dir, id := recordProposal(t)
	run("proposals, one", exitOK, "proposals", "-o", "json", "--all", "--state-dir", dir)
	run("apply without approval (refused)", exitFailed, "apply", id, "-o", "json", "--interval", "50ms", "--state-dir", dir, "--log-level", "error")
	run("history after a refusal", exitOK, "history", "-o", "json", "--state-dir", dir)
	run("history records after a refusal", exitOK, "history", "--records", "-o", "json", "--state-dir", dir)
	if _, errOut, code := runCLI(t, "approve", id, "--state-dir", dir); code != exitOK {
		t.Fatalf("approve: %s", errOut)
	}
	run("proposals, approved", exitOK, "proposals", "-o", "json", "--all", "--state-dir", dir)

	// status: a real agent's state over a real control socket.
	cfg := config.Defaults()
	cfg.StateDir = filepath.Join(t.TempDir(), "agent-state")
	cfg.Agent.ControlSocket = filepath.Join(t.TempDir(), "control.sock")
	ag, err := agent.New(agent.Options{Config: cfg, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := agent.ListenControl(cfg.Agent.ControlSocket, zap.NewNop(), ag.Status, func(agent.Peer) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go ctl.Serve(ctx)
	t.Setenv("SOCKWARDEN_AGENT_CONTROL_SOCKET", cfg.Agent.ControlSocket)
	run("status of an agent", exitOK, "status", "-o", "json")
	// fleet proposals, status and hosts against a real etcd.
	fleetOutputs(t, run)

	for name := range all {
		if !used[name] {
			t.Errorf("schema %s: no test output validated against it", name)
		}
	}
}

// TestSchemaRejects: the validation can fail: a null list, a missing
// schema field and an unknown state are refused.
func TestSchemaRejects(t *testing.T) {
	all := schemas(t)
	for name, doc := range map[string]string{
		"null list":     `{"schema":"sockwarden.proposals/v1","proposals":null}`,
		"unknown state": `{"schema":"sockwarden.history/v1","changes":[],"proposals":[{"proposal":"p","state":"rolled_back","time":"2026-01-01T00:00:00Z"}]}`,
		"missing field": `{"schema":"sockwarden.history/v1","changes":[]}`,
	} {
		inst, _ := jsonschema.UnmarshalJSON(strings.NewReader(doc))
		var head struct{ Schema string }
		json.Unmarshal([]byte(doc), &head)
		if err := all[head.Schema].Validate(inst); err == nil {
			t.Errorf("%s: %s accepted", name, doc)
		}
	}
}

// TestOutcomeSchemasCoverFields: every JSON field of remediate.Outcome is
// in the outcome of both schemas that carry one (apply's outcome.json and
// resolve's outcomes.json), so a field set only on a rare path (an
// interrupted verification) cannot fail a document its schema forbids.
func TestOutcomeSchemasCoverFields(t *testing.T) {
	var fields []string
	rt := reflect.TypeFor[remediate.Outcome]()
	for i := range rt.NumField() {
		if name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			fields = append(fields, name)
		}
	}
	for _, file := range []string{"outcome.json", "outcomes.json"} {
		b, err := os.ReadFile(filepath.Join("../../docs/schema", file))
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		props := outcomeProps(doc)
		if props == nil {
			t.Fatalf("%s: no object with the properties proposal and state", file)
		}
		for _, f := range fields {
			if _, ok := props[f]; !ok {
				t.Errorf("%s: remediate.Outcome's %q is not in its properties", file, f)
			}
		}
	}
}

// outcomeProps finds, anywhere in a schema, the properties of an object
// that has both "proposal" and "state": the outcome.
func outcomeProps(v any) map[string]any {
	switch v := v.(type) {
	case map[string]any:
		if p, ok := v["properties"].(map[string]any); ok && p["proposal"] != nil && p["state"] != nil {
			return p
		}
		for _, x := range v {
			if p := outcomeProps(x); p != nil {
				return p
			}
		}
	case []any:
		for _, x := range v {
			if p := outcomeProps(x); p != nil {
				return p
			}
		}
	}
	return nil
}
