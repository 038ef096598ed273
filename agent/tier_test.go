package agent

import (
	"testing"
	"time"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/sample"
)

func TestFullReason(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	at := func(sec int, counters map[string]uint64) *sample.Sample {
		return &sample.Sample{Time: t0.Add(time.Duration(sec) * time.Second), Counters: counters}
	}
	calm := map[string]uint64{"TcpExtListenOverflows": 10, "TcpPassiveOpens": 100}
	full := at(0, calm)
	full.Sockstat = sample.Sockstat{TCPTimeWait: 1000, TCPOrphan: 5}
	cfg := config.Defaults()

	tests := []struct {
		name string
		in   tierInput
		want string
	}{
		{"first tick", tierInput{cur: at(0, calm)}, "first census"},
		{"healthy and quiet stays cheap", tierInput{prev: at(0, calm), lastFull: full, cur: at(10, calm), ticksSinceFull: 3}, ""},
		{"every N ticks", tierInput{prev: at(0, calm), lastFull: full, cur: at(10, calm), ticksSinceFull: 180}, "every 180 ticks"},
		{"N-1 ticks stays cheap", tierInput{prev: at(0, calm), lastFull: full, cur: at(10, calm), ticksSinceFull: 179}, ""},
		{"open findings keep the full census", tierInput{prev: at(0, calm), lastFull: full, cur: at(10, calm), open: true}, "findings open"},
		{"drops rising", tierInput{prev: at(0, calm), lastFull: full,
			cur: at(10, map[string]uint64{"TcpExtListenOverflows": 15, "TcpPassiveOpens": 200})}, "TcpExtListenOverflows +5"},
		{"a counter going backwards is not a rise", tierInput{prev: at(0, calm), lastFull: full,
			cur: at(10, map[string]uint64{"TcpExtListenOverflows": 3})}, ""},
		{"listener half full", tierInput{prev: at(0, calm), lastFull: full,
			cur: &sample.Sample{Time: t0.Add(10 * time.Second), Counters: calm,
				Listeners: []sample.Listener{{Local: "0.0.0.0:80", RecvQ: 64, SendQ: 128}}}}, "listener 0.0.0.0:80 filling (64/128)"},
		{"listener below half", tierInput{prev: at(0, calm), lastFull: full,
			cur: &sample.Sample{Time: t0.Add(10 * time.Second), Counters: calm,
				Listeners: []sample.Listener{{Local: "0.0.0.0:80", RecvQ: 63, SendQ: 128}}}}, ""},
		{"syn flooding on one of our ports", tierInput{prev: at(0, calm), lastFull: full,
			cur: &sample.Sample{Time: t0.Add(10 * time.Second), Counters: calm, Listeners: []sample.Listener{{Local: "0.0.0.0:443", Port: 443}},
				Kernel: []sample.KernelEvent{{Kind: "syn-flood", Port: 443}}}}, "kernel log: syn-flood on port 443"},
		{"syn flooding on another namespace's port", tierInput{prev: at(0, calm), lastFull: full,
			cur: &sample.Sample{Time: t0.Add(10 * time.Second), Counters: calm, Listeners: []sample.Listener{{Local: "0.0.0.0:443", Port: 443}},
				Kernel: []sample.KernelEvent{{Kind: "syn-flood", Port: 8087}}}}, ""},
		{"tcp out of memory", tierInput{prev: at(0, calm), lastFull: full,
			cur: &sample.Sample{Time: t0.Add(10 * time.Second), Counters: calm, Kernel: []sample.KernelEvent{{Kind: "tcp-oom"}}}}, "kernel log: tcp-oom"},
		{"port-range parity advice is not trouble", tierInput{prev: at(0, calm), lastFull: full,
			cur: &sample.Sample{Time: t0.Add(10 * time.Second), Counters: calm, Kernel: []sample.KernelEvent{{Kind: "port-range-parity"}}}}, ""},
		{"time-wait climbing", tierInput{prev: at(0, calm), lastFull: full,
			cur: &sample.Sample{Time: t0.Add(10 * time.Second), Counters: calm, Sockstat: sample.Sockstat{TCPTimeWait: 1300, TCPOrphan: 5}}}, "TIME-WAIT 1000 -> 1300"},
		{"time-wait within ratio", tierInput{prev: at(0, calm), lastFull: full,
			cur: &sample.Sample{Time: t0.Add(10 * time.Second), Counters: calm, Sockstat: sample.Sockstat{TCPTimeWait: 1199, TCPOrphan: 5}}}, ""},
		{"orphans climbing from little", tierInput{prev: at(0, calm), lastFull: full,
			cur: &sample.Sample{Time: t0.Add(10 * time.Second), Counters: calm, Sockstat: sample.Sockstat{TCPTimeWait: 1000, TCPOrphan: 30}}}, "orphans 5 -> 30"},
		{"sockets in use climbing (a leak moves no counter)", tierInput{prev: at(0, calm), lastFull: full,
			cur: &sample.Sample{Time: t0.Add(10 * time.Second), Counters: calm, Sockstat: sample.Sockstat{TCPTimeWait: 1000, TCPOrphan: 5, TCPInUse: 600}}}, "sockets in use 0 -> 600"},
		{"orphans under the floor", tierInput{prev: at(0, calm), lastFull: full,
			cur: &sample.Sample{Time: t0.Add(10 * time.Second), Counters: calm, Sockstat: sample.Sockstat{TCPTimeWait: 1000, TCPOrphan: 20}}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := fullReason(tc.in, cfg); got != tc.want {
				t.Errorf("fullReason = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRoutineCensusSkipsOwners(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	at := func(sec int, overflows uint64) *sample.Sample {
		return &sample.Sample{Time: t0.Add(time.Duration(sec) * time.Second), Counters: map[string]uint64{"TcpExtListenOverflows": overflows}}
	}
	cfg := config.Defaults()
	cfg.Agent.FullEvery = 30
	filling := at(10, 10)
	filling.Listeners = []sample.Listener{{Local: "0.0.0.0:80", SendQ: 128, RecvQ: 64}}
	for reason, tc := range map[string]struct {
		in   tierInput
		want bool
	}{
		"first census":                         {tierInput{cur: at(0, 10)}, true},
		"every 30 ticks":                       {tierInput{prev: at(0, 10), lastFull: at(0, 10), cur: at(10, 10), ticksSinceFull: 30}, true},
		"findings open":                        {tierInput{prev: at(0, 10), lastFull: at(0, 10), cur: at(10, 10), open: true}, false},
		"TcpExtListenOverflows +5":             {tierInput{prev: at(0, 10), lastFull: at(0, 10), cur: at(10, 15)}, false},
		"listener 0.0.0.0:80 filling (64/128)": {tierInput{prev: at(0, 10), lastFull: at(0, 10), cur: filling}, false},
	} {
		got := decideCensus(tc.in, cfg)
		if got.why != reason {
			t.Fatalf("decideCensus = %q, want %q", got.why, reason)
		}
		if got.routine != tc.want {
			t.Errorf("routine(%q) = %v, want %v", reason, got.routine, tc.want)
		}
	}
}
