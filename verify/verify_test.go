package verify

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/sample"
)

var t0 = time.Date(2026, 11, 24, 1, 0, 0, 0, time.UTC)

// series builds samples one second apart: sendQ[i] is the listener's Send-Q
// (0 = no listener), overflows and opens are cumulative counters.
func series(sendQ []uint32, overflows, opens []uint64) []*sample.Sample {
	var out []*sample.Sample
	for i := range sendQ {
		s := &sample.Sample{Time: t0.Add(time.Duration(i) * time.Second), Counters: map[string]uint64{
			"TcpExtListenOverflows": overflows[i], "TcpPassiveOpens": opens[i], "TcpActiveOpens": opens[i],
		}}
		if sendQ[i] > 0 {
			s.Listeners = []sample.Listener{{Local: "127.0.0.1:8080", SendQ: sendQ[i],
				Owners: []sample.Owner{{PID: 42, Comm: "labapp", Unit: "lab.service"}}}}
		}
		out = append(out, s)
	}
	return out
}

func TestJudge(t *testing.T) {
	plan := diagnose.Verification{Counters: []string{"TcpExtListenOverflows"}, ListenerLocal: "127.0.0.1:8080", ListenerSendQ: 1024}
	tests := []struct {
		name    string
		plan    diagnose.Verification
		samples []*sample.Sample
		final   bool
		want    Outcome
		reason  string // substring
		waiting bool
	}{
		{
			name:    "relisten, drops stop",
			plan:    plan,
			samples: series([]uint32{128, 1024, 1024, 1024}, []uint64{0, 50, 50, 50}, []uint64{0, 100, 200, 300}),
			final:   true, want: Verified, reason: "Send-Q reached 1024",
		},
		{
			name:    "never listens again",
			plan:    plan,
			samples: series([]uint32{128, 128, 128, 128}, []uint64{0, 50, 100, 150}, []uint64{0, 100, 200, 300}),
			final:   true, want: NoEffect, reason: "pid 42 (labapp), unit lab.service", waiting: true,
		},
		{
			name:    "waiting, window not over",
			plan:    plan,
			samples: series([]uint32{128, 128}, []uint64{0, 50}, []uint64{0, 100}),
			final:   false, want: Pending, reason: "waiting for the application to listen again", waiting: true,
		},
		{
			name:    "listener gone then back",
			plan:    plan,
			samples: series([]uint32{128, 0, 1024, 1024, 1024}, []uint64{0, 50, 60, 60, 60}, []uint64{0, 100, 200, 300, 400}),
			final:   true, want: Verified,
		},
		{
			name:    "took effect, drops continue",
			plan:    plan,
			samples: series([]uint32{1024, 1024, 1024}, []uint64{0, 30, 60}, []uint64{0, 100, 200}),
			final:   true, want: Failed, reason: "up to 30.0/s",
		},
		{
			name:    "load gone",
			plan:    plan,
			samples: series([]uint32{1024, 1024, 1024}, []uint64{5, 5, 5}, []uint64{10, 10, 11}),
			final:   true, want: Inconclusive, reason: "load went away",
		},
		{
			name:    "window too short",
			plan:    plan,
			samples: series([]uint32{128, 1024, 1024}, []uint64{0, 50, 50}, []uint64{0, 100, 200}),
			final:   true, want: Inconclusive, reason: "too short",
		},
		{
			name:    "effect on last sample",
			plan:    plan,
			samples: series([]uint32{128, 128, 1024}, []uint64{0, 50, 100}, []uint64{0, 100, 200}),
			final:   true, want: Inconclusive, reason: "too late",
		},
		{
			name:    "no listener in plan (port range)",
			plan:    diagnose.Verification{Counters: []string{"TcpExtListenOverflows"}},
			samples: series([]uint32{0, 0, 0}, []uint64{0, 0, 0}, []uint64{0, 100, 200}),
			final:   true, want: Verified,
		},
		{
			name:    "no counters",
			plan:    diagnose.Verification{},
			samples: series([]uint32{0, 0, 0}, []uint64{0, 0, 0}, []uint64{0, 100, 200}),
			final:   true, want: Inconclusive, reason: "no counter",
		},
		{
			name:    "counter missing",
			plan:    diagnose.Verification{Counters: []string{"TcpExtNoSuch"}},
			samples: series([]uint32{0, 0, 0}, []uint64{0, 0, 0}, []uint64{0, 100, 200}),
			final:   true, want: Inconclusive, reason: "missing",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := Judge(Input{Plan: tc.plan, Samples: tc.samples, MaxDropsPerSec: 0, MinArrivalsPerSec: 5, MinCleanIntervals: 2, Final: tc.final})
			if v.Outcome != tc.want {
				t.Fatalf("outcome %s (%s), want %s", v.Outcome, v.Reason, tc.want)
			}
			if !strings.Contains(v.Reason, tc.reason) {
				t.Fatalf("reason %q does not contain %q", v.Reason, tc.reason)
			}
			if (v.Waiting != "") != tc.waiting {
				t.Fatalf("waiting = %q, want set=%v", v.Waiting, tc.waiting)
			}
		})
	}
}

func TestJudgeIntervals(t *testing.T) {
	plan := diagnose.Verification{Counters: []string{"TcpExtListenOverflows"}, ListenerLocal: "127.0.0.1:8080", ListenerSendQ: 1024}
	v := Judge(Input{Plan: plan, Samples: series([]uint32{128, 1024, 1024}, []uint64{0, 40, 40}, []uint64{0, 20, 40}), MinArrivalsPerSec: 5, Final: true})
	want := []Interval{
		{From: t0, To: t0.Add(time.Second), Seconds: 1, DropsPerSec: 40, ArrivalsPerSec: 40, Known: true, Loaded: true},
		{From: t0.Add(time.Second), To: t0.Add(2 * time.Second), Seconds: 1, DropsPerSec: 0, ArrivalsPerSec: 40, Known: true, Effective: true, Loaded: true, Clean: true},
	}
	if diff := cmp.Diff(want, v.Intervals); diff != "" {
		t.Fatalf("(-want +got)\n%s", diff)
	}
	if v.Outcome != Verified || !v.EffectiveAt.Equal(t0.Add(time.Second)) {
		t.Fatalf("outcome %s effective %v", v.Outcome, v.EffectiveAt)
	}
	if diff := cmp.Diff([]string{"lab.service"}, v.Units()); diff != "" {
		t.Fatalf("units (-want +got)\n%s", diff)
	}
}

func TestJudgeByFinding(t *testing.T) {
	plan := diagnose.Verification{} // a port range: no counter
	gone := &diagnose.Report{Findings: []diagnose.Finding{{Kind: diagnose.KindTimeWaitPile, Subject: "other", Severity: diagnose.SevWarning}}}
	still := &diagnose.Report{Findings: []diagnose.Finding{{Kind: diagnose.KindEphemeralPorts, Subject: "d", Severity: diagnose.SevCritical, Title: "ports to d"}}}
	info := &diagnose.Report{Findings: []diagnose.Finding{{Kind: diagnose.KindEphemeralPorts, Subject: "d", Severity: diagnose.SevInfo}}}
	loaded := series([]uint32{0, 0, 0}, []uint64{0, 0, 0}, []uint64{0, 100, 200})
	idle := series([]uint32{0, 0, 0}, []uint64{0, 0, 0}, []uint64{0, 0, 1})
	tests := []struct {
		name    string
		after   *diagnose.Report
		samples []*sample.Sample
		want    Outcome
	}{
		{"finding gone under load", gone, loaded, Verified},
		{"finding only informational", info, loaded, Verified},
		{"finding still there", still, loaded, Failed},
		{"gone but idle", gone, idle, Inconclusive},
		{"no diagnosis", nil, loaded, Inconclusive},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := Judge(Input{Plan: plan, Samples: tc.samples, MinArrivalsPerSec: 5, MinCleanIntervals: 2, Final: true,
				After: tc.after, Finding: diagnose.KindEphemeralPorts, Subject: "d"})
			if v.Outcome != tc.want {
				t.Fatalf("outcome %s (%s), want %s", v.Outcome, v.Reason, tc.want)
			}
		})
	}
}
