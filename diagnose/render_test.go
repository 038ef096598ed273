package diagnose

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sockwarden/sockwarden/diagnose/diagnosetest"
	"github.com/sockwarden/sockwarden/sample"
)

func TestProposalID(t *testing.T) {
	ch := []Change{{Key: kPortRange, Current: "40000  40999", Proposed: "40000 41999"}}
	id := ProposalID("vm", "/run/netns/a", KindEphemeralPorts, "127.0.0.1:8086 from 127.0.0.1", ch)
	cases := []struct {
		name string
		id   string
		same bool
	}{
		{"same facts", ProposalID("vm", "/run/netns/a", KindEphemeralPorts, "127.0.0.1:8086 from 127.0.0.1", []Change{{kPortRange, "40000 40999", "40000 41999"}}), true},
		{"other host", ProposalID("vm2", "/run/netns/a", KindEphemeralPorts, "127.0.0.1:8086 from 127.0.0.1", ch), false},
		{"other netns", ProposalID("vm", "/run/netns/b", KindEphemeralPorts, "127.0.0.1:8086 from 127.0.0.1", ch), false},
		{"other subject", ProposalID("vm", "/run/netns/a", KindEphemeralPorts, "127.0.0.1:8087 from 127.0.0.1", ch), false},
		{"other current", ProposalID("vm", "/run/netns/a", KindEphemeralPorts, "127.0.0.1:8086 from 127.0.0.1", []Change{{kPortRange, "40000 40998", "40000 41999"}}), false},
		{"other proposed", ProposalID("vm", "/run/netns/a", KindEphemeralPorts, "127.0.0.1:8086 from 127.0.0.1", []Change{{kPortRange, "40000 40999", "40000 42001"}}), false},
		{"fields do not run together", ProposalID("vm", "/run/netns/a", KindEphemeralPorts+"1", "27.0.0.1:8086 from 127.0.0.1", ch), false},
	}
	for _, tc := range cases {
		if (tc.id == id) != tc.same {
			t.Errorf("%s: id %s vs %s, same = %v", tc.name, tc.id, id, tc.same)
		}
	}
	if len(id) != 12 || strings.Trim(id, "0123456789abcdef") != "" {
		t.Errorf("id %q is not 12 hex digits", id)
	}
}

func TestSparkline(t *testing.T) {
	cases := []struct {
		in   []float64
		want string
	}{
		{[]float64{0, 0}, "▁▁"},
		{[]float64{0, 10}, "▁█"},
		{[]float64{1, 5, 10}, "▃▅█"},
		{[]float64{172.6, 195.3}, "▇█"},
	}
	for _, tc := range cases {
		if got := Sparkline(tc.in); got != tc.want {
			t.Errorf("Sparkline(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPortSet(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", ""},
		{"8080", "8080"},
		{"8080,9000-9003, 9004,22", "22,8080,9000-9004"},
		{"bogus,7", "7"},
	}
	for _, tc := range cases {
		if got := parsePortSet(tc.in).String(); got != tc.want {
			t.Errorf("parsePortSet(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestMarkdownChangeTicket: the markdown has the four sections, the table,
// the sysctl -w lines in order and the rollback lines in reverse.
func TestMarkdownChangeTicket(t *testing.T) {
	r := Run(series(2, func(i int, s *sample.Sample) {
		s.Sysctls[kPortRange] = "40000 40199"
		s.Sysctls[kTwReuse] = "0"
		s.Listeners = []sample.Listener{listener("0.0.0.0:40300", 40300, 0, 128, nil)}
		s.Destinations = []sample.Destination{{Src: "10.0.0.1", Dst: "10.0.0.5", DstPort: 5432, Total: 190, States: map[string]int{sample.StateTimeWait: 190}}}
	}), cfg())
	var b bytes.Buffer
	if err := WriteMarkdown(&b, r); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	var got []string
	for _, l := range strings.Split(md, "\n") {
		if strings.HasPrefix(l, "## ") || strings.Contains(l, "sysctl -w") || strings.HasPrefix(l, "| `") {
			got = append(got, l)
		}
	}
	want := []string{
		"## (a) Read",
		"## (b) Verdict and evidence",
		"## (c) Change: current -> proposed",
		"| `net.ipv4.ip_local_reserved_ports` | `` | `40300` |",
		"| `net.ipv4.ip_local_port_range` | `40000 40199` | `40000 40399` |",
		"| `net.ipv4.tcp_tw_reuse` | `0` | `1` |",
		`ip netns exec sw-test sysctl -w net.ipv4.ip_local_reserved_ports=40300`,
		`ip netns exec sw-test sysctl -w net.ipv4.ip_local_port_range="40000 40399"`,
		`ip netns exec sw-test sysctl -w net.ipv4.tcp_tw_reuse=1`,
		`ip netns exec sw-test sysctl -w net.ipv4.tcp_tw_reuse=0`,
		`ip netns exec sw-test sysctl -w net.ipv4.ip_local_port_range="40000 40199"`,
		`ip netns exec sw-test sysctl -w net.ipv4.ip_local_reserved_ports=""`,
		"## (d) Verification",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("markdown (-want +got):\n%s\n%s", diff, md)
	}
}

// TestTextSections: text output has the four sections in order and a
// healthy host says so explicitly.
func TestTextSections(t *testing.T) {
	r := Run(series(2, nil), cfg())
	var b bytes.Buffer
	if err := WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	last := -1
	for _, h := range []string{"Healthy: nothing wrong.", "(a) Read", "Nothing wrong:", "(b) Verdict and evidence", "(c) Change: current -> proposed", "(d) Verification"} {
		i := strings.Index(out, h)
		if i < 0 || i < last {
			t.Fatalf("%q missing or out of order in:\n%s", h, out)
		}
		last = i
	}
}

// TestPropRandomSeries runs Run over random series (diagnosetest.Series,
// shared with remediate's guard property test) under random valid
// configurations: it never panics and every report keeps the invariants
// (no sysctl for app, peer, none or unknown findings; never
// tcp_tw_recycle; never tcp_max_syn_backlog with cookies on; proposals of
// unconfirmed findings not ready; no widened range over a listening port).
func TestPropRandomSeries(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 1000; n++ {
		c := diagnosetest.Config(rng)
		ser := diagnosetest.Series(rng)
		r := Run(ser, c)
		checkInvariants(t, r)
		last := ser[len(ser)-1]
		for _, p := range r.Proposals {
			reserved := parsePortSet(last.Sysctls[kReserved])
			for _, c := range p.Changes {
				if c.Key == kReserved {
					reserved = parsePortSet(c.Proposed)
				}
				if c.Key != kPortRange {
					continue
				}
				f := strings.Fields(c.Proposed)
				lo, hi := atoi(f[0]), atoi(f[1])
				if len(f) != 2 || lo < min(1024, atoi(strings.Fields(c.Current)[0])) || lo > hi || hi > 65535 {
					t.Fatalf("bad range proposal %q", c.Proposed)
				}
				for _, x := range ser {
					for _, l := range x.Listeners {
						if int(l.Port) >= lo && int(l.Port) <= hi && !reserved[int(l.Port)] {
							t.Errorf("range %q covers listening port %d, not reserved", c.Proposed, l.Port)
						}
					}
				}
			}
		}
		if t.Failed() {
			t.Fatalf("series %d:\n%s", n, dump(r))
		}
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func TestPartialSampleSummary(t *testing.T) {
	r := Run(series(2, func(i int, s *sample.Sample) { s.Partial = true }), cfg())
	if !strings.HasPrefix(r.Summary[0], "Cheap sample") {
		t.Errorf("summary of a cheap sample: %q", r.Summary[0])
	}
}

// A paste whose only table was filtered by a port and showed no listener
// says so for that port, not "not read", nor "no listening sockets" at
// large.
func TestFilteredPortSummary(t *testing.T) {
	r := Run(series(1, func(i int, s *sample.Sample) {
		s.Listeners = nil
		s.Missing = append(s.Missing, sample.Missing{Source: "listeners", Reason: "listeners on ports other than 443 not read"})
		s.ListenerPorts = []uint16{443}
	}), cfg())
	want := "No listening sockets on port 443 (the tables pasted are filtered by port); listeners on other ports not read (capture: ss -tlnp)."
	if !slices.Contains(r.Summary, want) {
		t.Errorf("summary %q, want it to hold %q", r.Summary, want)
	}
}

// A kernel-side finding without a proposal says why: its sysctl is not
// on the allowlist (tcp_mem, nf_conntrack_max), or no change fits the
// configured bounds.
func TestNoChangeWhy(t *testing.T) {
	for _, tc := range []struct {
		kind, want string
	}{
		{KindConntrackFull, "net.netfilter.nf_conntrack_max is not on the remediation allowlist"},
		{KindTCPMemoryPressure, "net.ipv4.tcp_mem is not on the remediation allowlist"},
		{KindAcceptQueueOverflow, "no change within the configured bounds"},
	} {
		r := Report{Findings: []Finding{{Kind: tc.kind, Side: SideKernel, Severity: SevCritical, Confirmed: true}}}
		if got := noChangeWhy(r); !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want it to say %q", tc.kind, got, tc.want)
		}
	}
}
