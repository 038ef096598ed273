package config

import (
	"errors"
	"strings"
	"testing"
)

// TestValuesAreNotRounded: an integer key given 2.7 or true, a value past
// its type's range, a duration that overflows, and an agent.tick below its
// floor are refused with the key and the value given. Before: 2.7 was
// taken as 2, true as 1, an overflow reported as -9223372036854775808 and
// a duration's error left the value out.
func TestValuesAreNotRounded(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		env        []string
		want       []string
	}{
		{"fraction", "diagnose:\n  samples: 2.7\n", nil, []string{"diagnose.samples", "2.7", "whole number"}},
		{"bool", "diagnose:\n  samples: true\n", nil, []string{"diagnose.samples", "true", "whole number"}},
		{"bool for full_every", "agent:\n  full_every: false\n", nil, []string{"agent.full_every", "false"}},
		{"overflow in file", "diagnose:\n  samples: 99999999999999999999\n", nil, []string{"diagnose.samples", "1e+20", "out of range"}},
		{"overflow in env", "", []string{"SOCKWARDEN_DIAGNOSE_SAMPLES=99999999999999999999"}, []string{"diagnose.samples", "99999999999999999999", "out of range"}},
		{"fraction in env", "", []string{"SOCKWARDEN_DIAGNOSE_CLOSE_WAIT_MIN=1.5"}, []string{"diagnose.close_wait_min", "1.5", "whole number"}},
		{"duration overflow", "agent:\n  tick: 99999999999h\n", nil, []string{"agent.tick", "99999999999h"}},
		{"bool for a ratio", "diagnose:\n  port_use_ratio: true\n", nil, []string{"diagnose.port_use_ratio", "true", "number"}},
		{"number for a bool", "sample:\n  owners: 2\n", nil, []string{"sample.owners", "2", "true or false"}},
		{"tick below its floor", "agent:\n  tick: 1ns\n", nil, []string{"agent.tick", "1ns", "at least 1s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := tc.env
			if env == nil {
				env = []string{}
			}
			_, err := Load(Options{File: write(t, tc.yaml), Env: env})
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to say %q", err, w)
				}
			}
		})
	}
	// What must still load: whole numbers written as numbers or strings,
	// a whole float, booleans as words.
	c, err := Load(Options{File: write(t, "diagnose:\n  samples: 3.0\n  close_wait_min: \"150\"\nsample:\n  owners: false\nagent:\n  tick: 1s\n"),
		Env: []string{"SOCKWARDEN_DIAGNOSE_FIN_WAIT2_MIN=600", "SOCKWARDEN_SAMPLE_OWNERS=true", "SOCKWARDEN_DIAGNOSE_PORT_USE_RATIO=0.5"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Diagnose.Samples != 3 || c.Diagnose.CloseWaitMin != 150 || c.Diagnose.FinWait2Min != 600 || !c.Sample.Owners || c.Diagnose.PortUseRatio != 0.5 {
		t.Errorf("got samples %d close_wait_min %d fin_wait2_min %d owners %v port_use_ratio %g", c.Diagnose.Samples, c.Diagnose.CloseWaitMin, c.Diagnose.FinWait2Min, c.Sample.Owners, c.Diagnose.PortUseRatio)
	}
}
