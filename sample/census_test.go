package sample

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
)

func sock(state, local, remote string, inode uint64) Socket {
	l, r := netip.MustParseAddrPort(local), netip.MustParseAddrPort(remote)
	fam := "ipv4"
	if l.Addr().Is6() {
		fam = "ipv6"
	}
	return Socket{State: state, Family: fam, Local: l, Remote: r, Inode: inode}
}

func states(kv ...any) map[string]int {
	m := NewStates()
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1].(int)
	}
	return m
}

func TestCensus(t *testing.T) {
	web := Owner{PID: 10, Comm: "web", Unit: "web.service", FDs: 7, FDLimit: 1024}
	cli := Owner{PID: 20, Comm: "client"}
	lst := sock(StateListen, "0.0.0.0:80", "0.0.0.0:0", 100)
	lst.RecvQ, lst.SendQ = 3, 511
	lst6 := sock(StateListen, "[::]:443", "[::]:0", 101)
	lst6.SendQ = 4096
	lst6only := sock(StateListen, "[::]:8443", "[::]:0", 102)
	lst6only.V6Only = true

	c := NewCensus(2, 1)
	c.Add(lst, []Owner{web})
	c.Add(lst6, []Owner{web})
	c.Add(lst6only, nil)
	// Inbound connections to :80 and :443 are not destinations.
	c.Add(sock(StateEstab, "10.0.0.1:80", "10.0.0.9:40000", 200), []Owner{web})
	c.Add(sock(StateCloseWait, "10.0.0.1:80", "10.0.0.9:40001", 201), []Owner{web})
	c.Add(sock(StateSynRecv, "10.0.0.1:80", "10.0.0.9:40002", 0), nil)
	c.Add(sock(StateEstab, "[::ffff:10.0.0.1]:443", "[::ffff:10.0.0.9]:40003", 202), []Owner{web})
	// Outbound: three to 10.0.0.5:5432 (one v4-mapped), one to :6379.
	c.Add(sock(StateEstab, "10.0.0.1:33000", "10.0.0.5:5432", 300), []Owner{cli})
	c.Add(sock(StateTimeWait, "10.0.0.1:33001", "10.0.0.5:5432", 0), nil)
	c.Add(sock(StateEstab, "[::ffff:10.0.0.1]:33002", "[::ffff:10.0.0.5]:5432", 301), []Owner{cli})
	c.Add(sock(StateSynSent, "10.0.0.1:33003", "10.0.0.6:6379", 302), []Owner{cli})
	c.Add(sock(StateTimeWait, "10.0.0.1:33004", "10.0.0.7:11211", 0), nil)
	c.Add(Socket{State: "BOGUS"}, nil)

	var got Sample
	c.Fill(&got)
	want := Sample{
		States:   states(StateListen, 3, StateEstab, 4, StateCloseWait, 1, StateSynRecv, 1, StateTimeWait, 2, StateSynSent, 1),
		StatesV4: states(StateListen, 1, StateEstab, 2, StateCloseWait, 1, StateSynRecv, 1, StateTimeWait, 2, StateSynSent, 1),
		StatesV6: states(StateListen, 2, StateEstab, 2),
		Total:    12,
		Listeners: []Listener{
			{Local: "0.0.0.0:80", Addr: "0.0.0.0", Port: 80, Family: "ipv4", RecvQ: 3, SendQ: 511, Inode: 100, Owners: []Owner{web}},
			{Local: "*:443", Addr: "::", Port: 443, Family: "ipv6", SendQ: 4096, Inode: 101, Owners: []Owner{web}},
			{Local: "[::]:8443", Addr: "::", Port: 8443, Family: "ipv6", Inode: 102},
		},
		Destinations: []Destination{
			{Src: "10.0.0.1", Dst: "10.0.0.5", DstPort: 5432, Total: 3, States: map[string]int{StateEstab: 2, StateTimeWait: 1}},
			{Src: "10.0.0.1", Dst: "10.0.0.6", DstPort: 6379, Total: 1, States: map[string]int{StateSynSent: 1}},
		},
		DestinationGroups: 3,
		Processes: []Process{
			{Owner: web, Total: 5, States: map[string]int{StateListen: 2, StateEstab: 2, StateCloseWait: 1}},
		},
		Orphans: map[string]int{StateSynRecv: 1, StateTimeWait: 2},
	}
	if d := gocmp.Diff(want, got); d != "" {
		t.Errorf("Fill (-want +got):\n%s", d)
	}

	// A source without inodes does not claim orphans.
	c = NewCensus(0, 0)
	c.InodesUnknown = true
	c.Add(sock(StateEstab, "10.0.0.1:33000", "10.0.0.5:5432", 0), nil)
	got = Sample{}
	c.Fill(&got)
	if got.Orphans != nil {
		t.Errorf("Orphans = %v with unknown inodes, want nil", got.Orphans)
	}
}

func TestCensusBoundedDestinations(t *testing.T) {
	c := NewCensus(3, 3)
	// Many one-socket groups, then a heavy destination arriving late.
	for i := range maxDestGroups + 1000 {
		dst := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		c.Add(Socket{State: StateTimeWait, Family: "ipv4", Local: netip.MustParseAddrPort("10.9.9.9:40000"), Remote: netip.AddrPortFrom(dst, 80)}, nil)
	}
	for i := range 500 {
		c.Add(sock(StateEstab, fmt.Sprintf("10.9.9.9:%d", 30000+i), "192.0.2.1:443", 1), nil)
	}
	if len(c.dests) > maxDestGroups {
		t.Errorf("destination table holds %d groups, bound is %d", len(c.dests), maxDestGroups)
	}
	var s Sample
	c.Fill(&s)
	if s.Destinations[0].Dst != "192.0.2.1" || s.Destinations[0].Total != 500 {
		t.Errorf("top destination = %+v, want 192.0.2.1:443 with 500", s.Destinations[0])
	}
	if want := maxDestGroups + 1000 + 1; s.DestinationGroups != want {
		t.Errorf("DestinationGroups = %d, want %d", s.DestinationGroups, want)
	}
}

func TestFormatLocal(t *testing.T) {
	for _, tc := range []struct {
		ap     string
		v6only bool
		want   string
	}{
		{"127.0.0.1:8080", false, "127.0.0.1:8080"},
		{"0.0.0.0:80", false, "0.0.0.0:80"},
		{"[::]:22", false, "*:22"},
		{"[::]:22", true, "[::]:22"},
		{"[::1]:8443", false, "[::1]:8443"},
		{"[::ffff:127.0.0.1]:80", false, "[::ffff:127.0.0.1]:80"},
	} {
		if got := FormatLocal(netip.MustParseAddrPort(tc.ap), tc.v6only); got != tc.want {
			t.Errorf("FormatLocal(%s, %v) = %q, want %q", tc.ap, tc.v6only, got, tc.want)
		}
	}
}

func TestWorthLooking(t *testing.T) {
	few := make([]pendingOwner, minUnowned-1)
	for i := range few {
		few[i] = pendingOwner{inode: uint32(i + 1), state: 1}
	}
	for _, tc := range []struct {
		name string
		in   []pendingOwner
		want bool
	}{
		{"none", nil, false},
		{"a few racing connections", few, false},
		{"a pile", append(few, pendingOwner{inode: 99, state: 8}), true},
		{"one listener", []pendingOwner{{inode: 7, state: 10}}, true},
	} {
		if got := worthLooking(tc.in); got != tc.want {
			t.Errorf("%s: worthLooking = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestTopK checks the one-pass selection against a full sort, with ties,
// for every k around the sizes that matter.
func TestTopK(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 5, 20, 21, 1000} {
		vals := make([]int, n)
		for i := range vals {
			vals[i] = rng.IntN(50) // many ties
		}
		byDesc := func(a, b int) int { return cmp.Compare(b, a) }
		want := slices.SortedFunc(slices.Values(vals), byDesc)
		for _, k := range []int{0, 1, 3, 20, n, n + 5} {
			got := topK(slices.Values(vals), k, byDesc)
			w := want[:min(k, n)]
			if !slices.Equal(got, w) && !(len(got) == 0 && len(w) == 0) {
				t.Errorf("n=%d k=%d: got %v, want %v", n, k, got, w)
			}
		}
	}
}

// TestCensusDestinationsTop checks the destination table's order and
// cut-off on a table full of single-socket groups (a server whose
// listener is gone, holding TIME-WAIT to every client port).
func TestCensusDestinationsTop(t *testing.T) {
	c := NewCensus(3, 0)
	for i := range 5000 {
		c.Add(sock(StateTimeWait, "10.0.0.1:80", fmt.Sprintf("10.0.%d.%d:%d", i/250, i%250, 1024+i), 0), nil)
	}
	for range 7 {
		c.Add(sock(StateEstab, "10.0.0.1:40000", "10.9.9.9:5432", 1), nil)
	}
	for range 4 {
		c.Add(sock(StateEstab, "10.0.0.1:40001", "10.9.9.8:6379", 1), nil)
	}
	var s Sample
	c.Fill(&s)
	got := []string{}
	for _, d := range s.Destinations {
		got = append(got, fmt.Sprintf("%s>%s:%d=%d", d.Src, d.Dst, d.DstPort, d.Total))
	}
	want := []string{"10.0.0.1>10.9.9.9:5432=7", "10.0.0.1>10.9.9.8:6379=4", "10.0.0.1>10.0.0.0:1024=1"}
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("destinations (-want +got):\n%s", diff)
	}
	if s.DestinationGroups != 5002 {
		t.Errorf("DestinationGroups = %d, want 5002", s.DestinationGroups)
	}
}

// BenchmarkCensusFill: Fill over a full destination table of single-socket
// groups (go test -bench CensusFill ./sample).
func BenchmarkCensusFill(b *testing.B) {
	c := NewCensus(20, 20)
	for i := range maxDestGroups {
		c.Add(sock(StateTimeWait, "10.0.0.1:80", fmt.Sprintf("10.%d.%d.%d:%d", i>>16, (i>>8)&255, i&255, 1024+i%60000), 0), nil)
	}
	b.ResetTimer()
	for b.Loop() {
		var s Sample
		c.Fill(&s)
	}
}
