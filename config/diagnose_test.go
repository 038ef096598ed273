package config

import (
	"strings"
	"testing"
)

// TestDiagnoseValidation: every diagnose threshold refuses a bad value with
// an error naming its key, and the defaults pass.
func TestDiagnoseValidation(t *testing.T) {
	if err := Defaults().Diagnose.validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tc := range []struct {
		key string
		mut func(*Diagnose)
	}{
		{"diagnose.samples", func(d *Diagnose) { d.Samples = 0 }},
		{"diagnose.interval", func(d *Diagnose) { d.Interval = 0 }},
		{"diagnose.min_arrivals_per_sec", func(d *Diagnose) { d.MinArrivalsPerSec = -1 }},
		{"diagnose.min_drops_per_sec", func(d *Diagnose) { d.MinDropsPerSec = -1 }},
		{"diagnose.close_wait_min", func(d *Diagnose) { d.CloseWaitMin = 0 }},
		{"diagnose.fin_wait2_min", func(d *Diagnose) { d.FinWait2Min = 0 }},
		{"diagnose.time_wait_min", func(d *Diagnose) { d.TimeWaitMin = -5 }},
		{"diagnose.syn_recv_min", func(d *Diagnose) { d.SynRecvMin = 0 }},
		{"diagnose.syn_sent_min", func(d *Diagnose) { d.SynSentMin = 0 }},
		{"diagnose.port_use_ratio", func(d *Diagnose) { d.PortUseRatio = 1.5 }},
		{"diagnose.fd_use_ratio", func(d *Diagnose) { d.FDUseRatio = 0 }},
		{"diagnose.somaxconn_cap", func(d *Diagnose) { d.SomaxconnCap = 64 }},
		{"diagnose.syn_backlog_cap", func(d *Diagnose) { d.SynBacklogCap = 1 }},
		{"diagnose.saturated_ratio", func(d *Diagnose) { d.SaturatedRatio = 2 }},
		{"diagnose.orphan_use_ratio", func(d *Diagnose) { d.OrphanUseRatio = -0.1 }},
		{"diagnose.port_range_floor", func(d *Diagnose) { d.PortRangeFloor = 70000 }},
	} {
		d := Defaults().Diagnose
		tc.mut(&d)
		err := d.validate()
		if err == nil || !strings.Contains(err.Error(), tc.key+":") {
			t.Errorf("%s: want an error naming the key, got %v", tc.key, err)
		}
	}
}
