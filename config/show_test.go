package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestExplainSources: every key is listed once with the value in force and
// where it came from; the later source wins (default < file < env < flag).
func TestExplainSources(t *testing.T) {
	opts, p := layered(t)
	_, got, err := Explain(opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(Keys()) {
		t.Fatalf("%d settings, want one per key (%d)", len(got), len(Keys()))
	}
	by := map[string]Setting{}
	for _, s := range got {
		by[s.Key] = s
	}
	want := map[string]Setting{
		"diagnose.interval": {Key: "diagnose.interval", Value: "2s", Source: SourceFile, Origin: p},
		"diagnose.samples":  {Key: "diagnose.samples", Value: 4, Source: SourceFlag, Origin: "--samples"},
		"agent.mode":        {Key: "agent.mode", Value: "auto", Source: SourceEnv, Origin: "SOCKWARDEN_AGENT_MODE"},
		"log_level":         {Key: "log_level", Value: "info", Source: SourceDefault},
		"agent.netns":       {Key: "agent.netns", Value: []string{}, Source: SourceDefault},
	}
	for k, w := range want {
		if diff := cmp.Diff(w, by[k]); diff != "" {
			t.Errorf("%s (-want +got):\n%s", k, diff)
		}
	}
}

// TestCheckNamesTheKey: config check reads the file alone and names the
// key at fault; the environment does not leak into it.
func TestCheckNamesTheKey(t *testing.T) {
	t.Setenv("SOCKWARDEN_NOT_A_KEY", "1")
	tests := []struct {
		name, body, want string
	}{
		{"good", "diagnose:\n  samples: 3\n", ""},
		{"unknown key", "diagnose:\n  intervall: 2s\n", "diagnose.intervall: unknown key"},
		{"bad duration", "diagnose:\n  interval: soon\n", "diagnose.interval"},
		{"bad mode", "agent:\n  mode: yolo\n", "agent.mode"},
		{"not yaml", "diagnose: [\n", "config.yaml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(write(t, tc.body))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check: %v; want ErrConfig naming %q", err, tc.want)
			}
		})
	}
	if err := Check("/nonexistent/sockwarden.yaml"); !errors.Is(err, ErrConfig) {
		t.Fatalf("missing file: %v", err)
	}
}
