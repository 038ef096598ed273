package diagnose

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sockwarden/sockwarden/sample"
)

// cloneSeries deep-copies a series through its JSON form.
func cloneSeries(t *testing.T, in []*sample.Sample) []*sample.Sample {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out []*sample.Sample
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// removal takes one source out of every sample of a series, as a bundle
// or a paste without it would read, and names the claims it backed and
// the "Not judged" entry that must replace them.
type removal struct {
	name      string
	remove    func(s *sample.Sample)
	claims    []string // healthy-line claims that rest on the source
	notJudged string   // what must then appear under "Not judged"
}

var removals = []removal{
	{
		name: "counters",
		remove: func(s *sample.Sample) {
			s.Counters = map[string]uint64{}
			s.Missing = append(s.Missing, sample.Missing{Source: "nstat.txt", Reason: "absent (and no netstat.txt/snmp.txt): Tcp and TcpExt counters unknown (capture: nstat -az)"})
		},
		claims:    []string{"no listener overflowed", "no SYN-queue drops"},
		notJudged: "listen and SYN-queue drops",
	},
	{
		name:      "dates",
		remove:    func(s *sample.Sample) { s.Time = time.Time{} },
		claims:    []string{"no listener overflowed", "no SYN-queue drops"},
		notJudged: "drop rates",
	},
	{
		name: "socket table",
		remove: func(s *sample.Sample) {
			s.Missing = append(s.Missing, sample.Missing{Source: "ss-tan.txt", Reason: "absent: states other than LISTEN, destinations and processes unknown (capture: ss -tanpe)"})
		},
		claims:    []string{"no state pile", "ports within their range"},
		notJudged: "state piles and ports",
	},
	{
		name: "listener table",
		remove: func(s *sample.Sample) {
			s.Listeners = nil
			s.Missing = append(s.Missing, sample.Missing{Source: "ss-tan.txt", Reason: "absent: socket states, listeners, destinations and processes unknown (capture: ss -tanpe and ss -tlnp)"})
		},
		claims:    []string{"no listener overflowed", "no listener full in the snapshot", "no state pile"},
		notJudged: "listen queues",
	},
	{
		name:      "port range sysctl",
		remove:    func(s *sample.Sample) { delete(s.Sysctls, kPortRange) },
		claims:    []string{"ports within their range"},
		notJudged: "ports (" + kPortRange + " not read)",
	},
	{
		name: "owners",
		remove: func(s *sample.Sample) {
			s.Missing = append(s.Missing, sample.Missing{Source: "owners", Reason: "captured text has no open-fd counts"})
		},
		claims:    []string{"process descriptors within their limits"},
		notJudged: "per-process descriptors",
	},
	{
		name:      "tcp_mem",
		remove:    func(s *sample.Sample) { delete(s.Sysctls, kTCPMem) },
		claims:    []string{"TCP memory within its limits"},
		notJudged: "TCP memory",
	},
	{
		name: "sockstat",
		remove: func(s *sample.Sample) {
			s.Sockstat = sample.Sockstat{}
			s.Missing = append(s.Missing, sample.Missing{Source: "sockstat.txt", Reason: "absent (and no ss-s.txt): socket totals and TCP memory unknown (capture: cat /proc/net/sockstat)"})
		},
		claims:    []string{"TCP memory within its limits"},
		notJudged: "TCP memory",
	},
	{
		name: "kernel log",
		remove: func(s *sample.Sample) {
			s.Kernel = nil
			s.Missing = append(s.Missing, sample.Missing{Source: "dmesg.txt", Reason: "absent: kernel log lines unknown (capture: dmesg)"})
		},
		notJudged: "kernel log",
	},
}

// TestHealthyClaimsBacked: every claim of the healthy line rests on a
// source that was read. Each lab bundle (read as `diagnose --from` does),
// with each source removed in turn, must lose the claims that source
// backed and name it under "Not judged".
func TestHealthyClaimsBacked(t *testing.T) {
	bundles, _ := filepath.Glob("../testdata/bundles/*.tar.gz")
	if len(bundles) < 10 {
		t.Fatalf("%d lab bundles, want 10", len(bundles))
	}
	in := map[string][]*sample.Sample{"healthy": goldenInputs(t)["healthy"]}
	for _, b := range bundles {
		s, err := sample.FromBundle(b)
		if err != nil {
			t.Fatal(err)
		}
		in[filepath.Base(b)] = s
	}
	backed := map[string]bool{}
	for name, series := range in {
		fine0, _ := claims(series)
		for _, rm := range removals {
			t.Run(name+"/"+rm.name, func(t *testing.T) {
				cut := cloneSeries(t, series)
				for _, s := range cut {
					rm.remove(s)
				}
				fine, notJudged := claims(cut)
				for _, c := range rm.claims {
					if slices.Contains(fine, c) {
						t.Errorf("claim %q still made without the %s: %q", c, rm.name, fine)
					}
					if slices.Contains(fine0, c) {
						backed[rm.name+": "+c] = true
					}
				}
				found := false
				for _, n := range notJudged {
					found = found || strings.HasPrefix(n, rm.notJudged)
				}
				if !found {
					t.Errorf("without the %s, Not judged lacks %q: %q", rm.name, rm.notJudged, notJudged)
				}
			})
		}
	}
	// The test means something only if the claims were made before.
	for _, want := range []string{"counters: no SYN-queue drops", "dates: no listener overflowed", "socket table: no state pile",
		"port range sysctl: ports within their range", "owners: process descriptors within their limits", "tcp_mem: TCP memory within its limits"} {
		if !backed[want] {
			t.Errorf("no input made the claim %q before its source was removed", want)
		}
	}

	// End to end on the healthy input: the healthy line of the report.
	for _, rm := range removals {
		cut := cloneSeries(t, in["healthy"])
		for _, s := range cut {
			rm.remove(s)
		}
		r := Run(cut, cfg())
		line := ""
		for _, l := range r.Summary {
			if strings.HasPrefix(l, "Nothing wrong") {
				line = l
			}
		}
		claimsPart, notPart, _ := strings.Cut(line, "Not judged:")
		if line == "" || !strings.Contains(notPart, rm.notJudged) {
			t.Errorf("healthy without the %s: %q lacks Not judged %q", rm.name, line, rm.notJudged)
		}
		for _, c := range rm.claims {
			if strings.Contains(claimsPart, c) {
				t.Errorf("healthy without the %s still claims %q: %q", rm.name, c, line)
			}
		}
	}
}

// TestNothingReadNothingSaid: the read of a source that was not read
// never reports its zero values as facts.
func TestNothingReadNothingSaid(t *testing.T) {
	ser := series(2, func(i int, s *sample.Sample) {
		s.Time = time.Time{}
		s.Counters = map[string]uint64{}
		s.Missing = []sample.Missing{
			{Source: "ss-tan.txt", Reason: "absent: socket states, listeners, destinations and processes unknown (capture: ss -tanpe and ss -tlnp)"},
			{Source: "nstat.txt", Reason: "absent (and no netstat.txt/snmp.txt): Tcp and TcpExt counters unknown (capture: nstat -az)"},
		}
	})
	r := Run(ser, cfg())
	all := strings.Join(r.Summary, "\n")
	for _, bad := range []string{"0 TCP sockets", "no listen drops", "0.0s apart", "No listening sockets", "no listener overflowed", "no state pile"} {
		if strings.Contains(all, bad) {
			t.Errorf("summary claims %q from nothing read:\n%s", bad, all)
		}
	}
	if r.IntervalSeconds != nil || r.Rates != nil {
		t.Errorf("interval %v, rates %v: unknowns must be absent", r.IntervalSeconds, r.Rates)
	}
	var b strings.Builder
	if err := WriteJSON(&b, r); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{`"interval_seconds"`, "0001-01-01"} {
		if strings.Contains(b.String(), bad) {
			t.Errorf("JSON carries %s for an unknown:\n%s", bad, b.String())
		}
	}
}

// A paste that holds no source any rule can judge (here netstat -s alone:
// counters since boot, no listener table, no sysctls, no kernel log) must
// not read as a clean bill of health: the verdict says "Nothing judged".
// With a listener table added, something is judged and the verdict is the
// usual one.
func TestNothingJudgedVerdict(t *testing.T) {
	netstatS := "$ netstat -s\nTcp:\n    12 active connection openings\nTcpExt:\n    5 times the listen queue of a socket overflowed\n"
	withSS := netstatS + "$ ss -tln\nState  Recv-Q Send-Q Local Address:Port Peer Address:Port\nLISTEN 0      4096   0.0.0.0:80         0.0.0.0:*\n"
	for _, tc := range []struct {
		name, text string
		nothing    bool
	}{
		{"netstat -s alone", netstatS, true},
		{"with a listener table", withSS, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			series, err := sample.FromPaste("t.txt", strings.NewReader(tc.text), sample.Options{})
			if err != nil {
				t.Fatal(err)
			}
			r := Run(series, cfg())
			if r.NothingJudged != tc.nothing {
				t.Fatalf("NothingJudged %v, want %v; summary %q", r.NothingJudged, tc.nothing, r.Summary)
			}
			v := verdictLine(r)
			if got := strings.HasPrefix(v, "Nothing judged"); got != tc.nothing {
				t.Errorf("verdict %q", v)
			}
			if tc.nothing && strings.Contains(v, "Healthy") {
				t.Errorf("verdict claims health: %q", v)
			}
		})
	}
}

// A healthy read of a partial input is healthy only in what was read: the
// verdict line says how many areas were not judged, section (b) says its
// "nothing wrong" covers what was read, and not_judged lists them. A
// fully judged series keeps the plain "Healthy: nothing wrong."
func TestPartialHealthyVerdict(t *testing.T) {
	text := "$ ss -tln\nState  Recv-Q Send-Q Local Address:Port Peer Address:Port\nLISTEN 0      4096   0.0.0.0:80         0.0.0.0:*\n"
	pasted, err := sample.FromPaste("t.txt", strings.NewReader(text), sample.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := Run(pasted, cfg())
	if !r.Healthy || r.NothingJudged || len(r.NotJudged) == 0 {
		t.Fatalf("healthy %v, nothing judged %v, not judged %q: want healthy with areas not judged", r.Healthy, r.NothingJudged, r.NotJudged)
	}
	if v := verdictLine(r); !strings.HasPrefix(v, "Healthy in what was read") || !strings.Contains(v, "not a clean bill of health") {
		t.Errorf("verdict %q", v)
	}
	var b strings.Builder
	if err := WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "Healthy: nothing wrong.") || strings.Contains(b.String(), "no rule fired.\n") {
		t.Errorf("a partial read claims plain health:\n%s", b.String())
	}
	full := Run(series(2, nil), cfg())
	if len(full.NotJudged) != 0 || verdictLine(full) != "Healthy: nothing wrong." {
		t.Errorf("full series: not judged %q, verdict %q", full.NotJudged, verdictLine(full))
	}
}

// A paste whose only table leaves listeners out (ss without -a) claims
// nothing of listen queues, and what it judged of its part is said as
// such; with ss -tln beside it, the listeners are read.
func TestPartialTableClaims(t *testing.T) {
	ssO := "$ ss -tn\nState      Recv-Q Send-Q Local Address:Port  Peer Address:Port\nCLOSE-WAIT 1      0      10.0.0.1:443        10.0.0.2:51000\nESTAB      0      0      10.0.0.1:443        10.0.0.3:51001\n"
	withL := ssO + "$ ss -tln\nState  Recv-Q Send-Q Local Address:Port Peer Address:Port\nLISTEN 0      4096   0.0.0.0:443        0.0.0.0:*\n"
	for _, tc := range []struct {
		name      string
		text      string
		listeners bool
	}{
		{"ss -tn alone", ssO, false},
		{"with ss -tln", withL, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pasted, err := sample.FromPaste("t.txt", strings.NewReader(tc.text), sample.Options{})
			if err != nil {
				t.Fatal(err)
			}
			fine, notJudged := claims(pasted)
			if got := slices.ContainsFunc(fine, func(s string) bool { return strings.Contains(s, "listener") }); got != tc.listeners {
				t.Errorf("fine %q: a claim about listeners %v, want %v", fine, got, tc.listeners)
			}
			if got := slices.ContainsFunc(notJudged, func(s string) bool { return strings.HasPrefix(s, "listen queues") }); got == tc.listeners {
				t.Errorf("not judged %q: listen queues named %v, want %v", notJudged, got, !tc.listeners)
			}
			if !slices.Contains(fine, "nothing piles up in the part of the socket table read") {
				t.Errorf("fine %q: the part read is not claimed", fine)
			}
		})
	}
}

// A filtered table that still shows a listener row (proxygen issue 265,
// corpus 46: netstat -anlp | grep 8090) read that listener: the report
// lists it, so "no listener table" beside it would contradict the list.
// Only the listeners the grep may have removed are not judged.
func TestFilteredTableListenersShown(t *testing.T) {
	text := "~# netstat -anlp | grep 8090\n" +
		"tcp        0      0 10.165.181.1:8090       0.0.0.0:*               LISTEN      23576/server\n" +
		"tcp        0      0 10.165.181.1:8090       10.37.8.47:58926        SYN_RECV    -\n"
	pasted, err := sample.FromPaste("t.txt", strings.NewReader(text), sample.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(pasted[0].Listeners); n != 1 {
		t.Fatalf("%d listeners read, want 1", n)
	}
	_, notJudged := claims(pasted)
	want := "listen queues beyond the listeners shown (the table was filtered: capture ss -tlnp)"
	if !slices.Contains(notJudged, want) {
		t.Errorf("not judged %q lacks %q", notJudged, want)
	}
	if slices.ContainsFunc(notJudged, func(s string) bool { return strings.Contains(s, "no listener table") }) {
		t.Errorf("not judged %q says no listener table beside the listener read", notJudged)
	}
}

// A kernel line pasted alone says nothing of the sockets by state: the
// evidence of the SYN-flooding and TIME-WAIT-bucket findings says the
// state was not read, not "0 SYN-RECV sockets"; with a socket table the
// count is given.
func TestStateEvidenceRead(t *testing.T) {
	syn := "[Wed Feb 20 11:18:44 2019] TCP: request_sock_TCP: Possible SYN flooding on port 9735. Sending cookies.  Check SNMP counters.\n"
	tw := "Apr 20 22:02:55 host kernel: TCP: time wait bucket table overflow\n"
	table := "$ ss -tan\nState    Recv-Q Send-Q Local Address:Port Peer Address:Port\nLISTEN   0      128    0.0.0.0:9735       0.0.0.0:*\nSYN-RECV 0      0      10.0.0.1:9735      10.0.0.2:51000\n"
	for _, tc := range []struct{ name, text, kind, want string }{
		{"SYN flooding alone", syn, KindSynQueueOverflow, "SYN-RECV sockets not read (no socket table: capture ss -tan state syn-recv)"},
		{"SYN flooding with ss -tan", "$ dmesg\n" + syn + table, KindSynQueueOverflow, "1 SYN-RECV sockets"},
		{"TIME-WAIT buckets alone", tw, KindTWBucketOverflow, "TIME-WAIT sockets not read (no socket table: capture ss -tan state time-wait)"},
		{"TIME-WAIT buckets with ss -tan", "$ dmesg\n" + tw + table, KindTWBucketOverflow, "0 TIME-WAIT sockets"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pasted, err := sample.FromPaste("t.txt", strings.NewReader(tc.text), sample.Options{})
			if err != nil {
				t.Fatal(err)
			}
			r := Run(pasted, cfg())
			var ev []string
			for _, f := range r.Findings {
				if f.Kind == tc.kind {
					ev = append(ev, f.Evidence...)
				}
			}
			if !slices.Contains(ev, tc.want) {
				t.Errorf("%s evidence %q, want %q", tc.kind, ev, tc.want)
			}
		})
	}
}
