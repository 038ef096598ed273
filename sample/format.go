package sample

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// TextCounters are the counters WriteText prints, in this order: the ones a
// diagnosis of connection problems turns on (issue 2's list). Linux has no
// "TCPAbortOnOverflow": with tcp_abort_on_overflow=1 the reset sent for an
// overflowing accept queue goes through tcp_check_req's embryonic_reset
// path and is counted as TcpExtEmbryonicRsts, which is printed instead.
var TextCounters = []string{
	"TcpExtListenOverflows", "TcpExtListenDrops", "TcpExtTCPReqQFullDrop", "TcpExtTCPReqQFullDoCookies",
	"TcpExtSyncookiesSent", "TcpExtSyncookiesRecv", "TcpExtSyncookiesFailed",
	"TcpExtTCPAbortOnMemory", "TcpExtEmbryonicRsts",
	"TcpPassiveOpens", "TcpActiveOpens", "TcpAttemptFails", "TcpEstabResets", "TcpCurrEstab", "TcpRetransSegs",
}

// PortRange is the usable ephemeral port range of a sample:
// net.ipv4.ip_local_port_range minus the reserved ports inside it.
type PortRange struct {
	Low, High uint16
	// Reserved counts the ports of ip_local_reserved_ports inside
	// [Low, High]; Usable = High-Low+1-Reserved.
	Reserved int
	Usable   int
}

// UsablePorts computes the usable ephemeral range from the sample's
// sysctls; ok is false when ip_local_port_range is absent or malformed.
// A missing or malformed ip_local_reserved_ports counts as none reserved.
func (s *Sample) UsablePorts() (PortRange, bool) {
	f := strings.Fields(s.Sysctls["net.ipv4.ip_local_port_range"])
	if len(f) != 2 {
		return PortRange{}, false
	}
	lo, err1 := strconv.ParseUint(f[0], 10, 16)
	hi, err2 := strconv.ParseUint(f[1], 10, 16)
	if err1 != nil || err2 != nil || lo > hi {
		return PortRange{}, false
	}
	pr := PortRange{Low: uint16(lo), High: uint16(hi)}
	reserved := map[uint64]bool{}
	for _, part := range strings.Split(s.Sysctls["net.ipv4.ip_local_reserved_ports"], ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		a, b, isRange := strings.Cut(part, "-")
		from, err1 := strconv.ParseUint(a, 10, 16)
		to := from
		var err2 error
		if isRange {
			to, err2 = strconv.ParseUint(b, 10, 16)
		}
		if err1 != nil || err2 != nil || from > to {
			continue
		}
		for p := max(from, lo); p <= min(to, hi); p++ {
			reserved[p] = true
		}
	}
	pr.Reserved = len(reserved)
	pr.Usable = int(hi-lo+1) - pr.Reserved
	return pr, true
}

// WriteText prints the readable summary of a sample that `sockwarden
// sample` shows: totals by state, the listeners with their queues and
// owners, the top destinations against the usable port range, the
// processes, the counters that matter, sockstat, the sysctls, the kernel
// log lines, the listener watch if any, and what is missing (once, at the
// end).
func WriteText(w io.Writer, s *Sample) error {
	ew := &textWriter{w: w}
	ew.textHeader(s)
	ew.textStates(s)
	ew.textListeners(s)
	ew.textDestinations(s)
	ew.textProcesses(s)
	ew.textCounters(s)
	ew.textSysctls(s)
	ew.textKernel(s)
	ew.textWatch(s)
	ew.textMissing(s)
	return ew.err
}

// textHeader writes the sample's host, namespace, time and source.
func (ew *textWriter) textHeader(s *Sample) {
	p := ew.printf
	where := "this namespace"
	if s.Netns != "" {
		where = "netns " + s.Netns
	}
	when := "time unknown"
	if !s.Time.IsZero() {
		when = s.Time.UTC().Format(time.RFC3339Nano)
	}
	p("sockwarden sample: %s, %s, %s (%s", orDash(s.Host), where, when, s.Source)
	if s.Duration > 0 {
		p(", took %s", s.Duration.Round(time.Microsecond))
	}
	p(")\n")
	if r := ReadSummary([]*Sample{s}); r != "" {
		p("%s\n", r)
	}
	if s.Partial {
		p("partial sample (cheap tier): no states, destinations or processes\n")
	}
}

// textStates writes the totals by state.
func (ew *textWriter) textStates(s *Sample) {
	p := ew.printf
	p("\nTCP sockets: %d", s.Total)
	if s.StatesV4 != nil || s.StatesV6 != nil {
		p(" (IPv4 %d, IPv6 %d)", sumStates(s.StatesV4), sumStates(s.StatesV6))
	}
	p("\n")
	tw := ew.table()
	var names, counts []string
	for _, st := range States {
		names = append(names, st)
		counts = append(counts, strconv.Itoa(s.States[st]))
	}
	fmt.Fprintf(tw, "  %s\n  %s\n", strings.Join(names[:6], "\t"), strings.Join(counts[:6], "\t"))
	fmt.Fprintf(tw, "  %s\n  %s\n", strings.Join(names[6:], "\t"), strings.Join(counts[6:], "\t"))
	ew.flush(tw)
	if len(s.Orphans) > 0 {
		p("  without a descriptor (orphans, TIME-WAIT, queued): %s\n", stateList(s.Orphans))
	}
}

// textListeners writes the listeners with their queues and owners.
func (ew *textWriter) textListeners(s *Sample) {
	p := ew.printf
	p("\nListeners: %d\n", len(s.Listeners))
	if len(s.Listeners) > 0 {
		tw := ew.table()
		fmt.Fprintf(tw, "  LOCAL\tRECV-Q\tSEND-Q\tFILL\tOWNER\n")
		for _, l := range s.Listeners {
			fill := "-"
			if l.SendQ > 0 {
				fill = strconv.Itoa(int(uint64(l.RecvQ)*100/uint64(l.SendQ))) + "%"
				if l.RecvQ >= l.SendQ {
					fill += " FULL"
				}
			}
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\t%s\n", l.Local, l.RecvQ, l.SendQ, fill, ownersText(l.Owners))
		}
		ew.flush(tw)
	}
}

// textDestinations writes the top destinations against the usable port range.
func (ew *textWriter) textDestinations(s *Sample) {
	p := ew.printf
	pr, prOK := s.UsablePorts()
	p("\nDestinations: %d of %d groups (source -> destination:port)", len(s.Destinations), s.DestinationGroups)
	if prOK {
		p("; usable ephemeral ports %d (%d-%d, %d reserved)", pr.Usable, pr.Low, pr.High, pr.Reserved)
	} else {
		p("; ephemeral port range unknown")
	}
	p("\n")
	if len(s.Destinations) > 0 {
		tw := ew.table()
		fmt.Fprintf(tw, "  SOURCE\tDESTINATION\tSOCKETS\tPORT USE\tSTATES\n")
		for _, d := range s.Destinations {
			use := "-"
			if prOK && pr.Usable > 0 {
				use = strconv.FormatFloat(float64(d.Total)*100/float64(pr.Usable), 'f', 1, 64) + "%"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%s\n", d.Src, joinHostPort(d.Dst, d.DstPort), d.Total, use, stateList(d.States))
		}
		ew.flush(tw)
	}
}

// textProcesses writes the processes by sockets held.
func (ew *textWriter) textProcesses(s *Sample) {
	p := ew.printf
	if len(s.Processes) > 0 {
		p("\nProcesses (by sockets held):\n")
		tw := ew.table()
		fmt.Fprintf(tw, "  PROCESS\tSOCKETS\tFDS\tSTATES\n")
		for _, pc := range s.Processes {
			fds := "-"
			if pc.FDLimit > 0 {
				fds = fmt.Sprintf("%d/%d", pc.FDs, pc.FDLimit)
			}
			fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\n", ownerText(pc.Owner), pc.Total, fds, stateList(pc.States))
		}
		ew.flush(tw)
	}
}

// textCounters writes the counters that matter and sockstat.
func (ew *textWriter) textCounters(s *Sample) {
	p := ew.printf
	p("\nCounters (cumulative since boot or namespace creation):\n")
	tw := ew.table()
	for _, name := range TextCounters {
		v := "-"
		if n, ok := s.Counters[name]; ok {
			v = strconv.FormatUint(n, 10)
		}
		fmt.Fprintf(tw, "  %s\t%s\n", name, v)
	}
	ew.flush(tw)
	st := s.Sockstat
	p("  sockstat: sockets %d, tcp inuse %d, tcp6 inuse %d, orphan %d, tw %d, alloc %d, mem %d pages\n",
		st.SocketsUsed, st.TCPInUse, st.TCP6InUse, st.TCPOrphan, st.TCPTimeWait, st.TCPAlloc, st.TCPMemPages)
}

// textSysctls writes the recorded sysctls.
func (ew *textWriter) textSysctls(s *Sample) {
	p := ew.printf
	p("\nSysctls:\n")
	tw := ew.table()
	for _, k := range SysctlKeys {
		v, ok := s.Sysctls[k]
		switch {
		case !ok:
			v = "(absent)"
		case v == "":
			v = `""`
		}
		fmt.Fprintf(tw, "  %s\t%s\n", k, v)
	}
	ew.flush(tw)
}

// textKernel writes the last ten matching kernel log lines.
func (ew *textWriter) textKernel(s *Sample) {
	p := ew.printf
	p("\nKernel log: %d matching lines\n", len(s.Kernel))
	for _, k := range s.Kernel[max(0, len(s.Kernel)-10):] {
		t := "time unknown"
		if !k.Time.IsZero() {
			t = k.Time.UTC().Format(time.RFC3339)
		}
		p("  %s %-17s %s\n", t, k.Kind, k.Line)
	}
}

// textWatch writes the listener watch, if any.
func (ew *textWriter) textWatch(s *Sample) {
	p := ew.printf
	if s.Watch != nil {
		p("\nListener watch: %d polls every %s from %s to %s\n", s.Watch.Polls, s.Watch.Interval,
			s.Watch.Start.UTC().Format(time.TimeOnly), s.Watch.End.UTC().Format(time.TimeOnly))
		tw := ew.table()
		fmt.Fprintf(tw, "  LOCAL\tSEND-Q\tPEAK RECV-Q\tAT LIMIT\tDRAINED\n")
		for _, pk := range s.Watch.Peaks {
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%d/%d\t%d\n", pk.Local, pk.SendQ, pk.PeakRecvQ, pk.AtLimit, pk.Polls, pk.Drained)
		}
		ew.flush(tw)
	}
}

// textMissing writes what could not be read.
func (ew *textWriter) textMissing(s *Sample) {
	p := ew.printf
	if len(s.Missing) > 0 {
		p("\nMissing (%d): the figures above lack these sources\n", len(s.Missing))
		for _, m := range s.Missing {
			p("  %s: %s\n", m.Source, m.Reason)
		}
	}
}

// WriteRates prints the per-second rates of the counters that matter
// between two samples of the same namespace (a bundle's consecutive
// snapshots), the figures a diagnosis turns on.
func WriteRates(w io.Writer, a, b *Sample) error {
	ew := &textWriter{w: w}
	d := Diff(a, b)
	if a.Time.IsZero() || b.Time.IsZero() || d.Seconds <= 0 {
		ew.printf("Rates: unknown (a snapshot has no time)\n")
		return ew.err
	}
	ew.printf("Rates over %.1fs (%s -> %s):\n", d.Seconds, a.Source, b.Source)
	tw := ew.table()
	for _, name := range TextCounters {
		if name == "TcpCurrEstab" {
			continue // a gauge, not a counter
		}
		if r, ok := d.Rate(name); ok {
			fmt.Fprintf(tw, "  %s\t%.2f/s\t(+%d)\n", name, r, d.Counters[name])
		}
	}
	ew.flush(tw)
	return ew.err
}

type textWriter struct {
	w   io.Writer
	err error
}

func (t *textWriter) printf(format string, a ...any) {
	if t.err == nil {
		_, t.err = fmt.Fprintf(t.w, format, a...)
	}
}

func (t *textWriter) table() *tabwriter.Writer {
	return tabwriter.NewWriter(t, 0, 4, 2, ' ', 0)
}

func (t *textWriter) Write(p []byte) (int, error) {
	if t.err != nil {
		return 0, t.err
	}
	n, err := t.w.Write(p)
	t.err = err
	return n, err
}

func (t *textWriter) flush(tw *tabwriter.Writer) {
	if err := tw.Flush(); err != nil && t.err == nil {
		t.err = err
	}
}

func sumStates(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// stateList prints non-zero state counts in kernel order: "ESTAB 3 TIME-WAIT 8".
func stateList(m map[string]int) string {
	var parts []string
	for _, st := range States {
		if n := m[st]; n != 0 {
			parts = append(parts, st+" "+strconv.Itoa(n))
		}
	}
	// States a newer source might add, in name order.
	var extra []string
	for k := range m {
		if stateIndex(k) == 0 && m[k] != 0 {
			extra = append(extra, k)
		}
	}
	slices.SortFunc(extra, cmp.Compare[string])
	for _, k := range extra {
		parts = append(parts, k+" "+strconv.Itoa(m[k]))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func ownerText(o Owner) string {
	s := fmt.Sprintf("%s[%d]", o.Comm, o.PID)
	if o.Unit != "" {
		s += " " + o.Unit
	}
	return s
}

func ownersText(os []Owner) string {
	if len(os) == 0 {
		return "-"
	}
	var parts []string
	for i, o := range os {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("+%d more", len(os)-3))
			break
		}
		t := ownerText(o)
		if o.FDLimit > 0 {
			t += fmt.Sprintf(" fds %d/%d", o.FDs, o.FDLimit)
		}
		parts = append(parts, t)
	}
	return strings.Join(parts, ", ")
}

func joinHostPort(host string, port uint16) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + strconv.Itoa(int(port))
	}
	return host + ":" + strconv.Itoa(int(port))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
