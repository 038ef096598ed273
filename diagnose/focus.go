package diagnose

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/sample"
)

// Symptom is what the user is fighting (`diagnose --symptom`), as the
// seed's workflow starts: "connection refused on 8080".
type Symptom string

const (
	SymptomNone      Symptom = ""
	SymptomRefused   Symptom = "refused"   // ECONNREFUSED: a reset answers the SYN
	SymptomTimeout   Symptom = "timeout"   // connect() or the first bytes never answered
	SymptomReset     Symptom = "reset"     // ECONNRESET on an established connection
	SymptomExhausted Symptom = "exhausted" // EADDRNOTAVAIL, EMFILE, "out of" something
)

// Symptoms lists the valid symptoms, in the order the usage names them.
var Symptoms = []Symptom{SymptomRefused, SymptomTimeout, SymptomReset, SymptomExhausted}

// ParseSymptom checks a --symptom value.
func ParseSymptom(v string) (Symptom, error) {
	for _, s := range Symptoms {
		if string(s) == v {
			return s, nil
		}
	}
	var names []string
	for _, s := range Symptoms {
		names = append(names, string(s))
	}
	return "", fmt.Errorf("%q is not one of %s", v, strings.Join(names, ", "))
}

// ParsePort checks a --port value: 1-65535.
func ParsePort(v string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimPrefix(v, ":"), 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port in 1-65535", v)
	}
	return uint16(n), nil
}

// Focus narrows a diagnosis to what the user is fighting. The zero Focus
// is a plain diagnosis.
type Focus struct {
	Symptom Symptom
	Port    uint16
}

// SymptomAnswer is the report's first word when a symptom or a port was
// named: whether the evidence explains it, by which findings, and what was
// not read that could.
type SymptomAnswer struct {
	Symptom string `json:"symptom,omitempty"`
	Port    uint16 `json:"port,omitempty"`
	// Explained is true when at least one finding explains the symptom.
	Explained bool `json:"explained"`
	// ExplainedBy names those findings, "kind on subject".
	ExplainedBy []string `json:"explained_by,omitempty"`
	// Answer is the plain-English reply, one paragraph.
	Answer string `json:"answer"`
	// NotRead lists the sources the input lacks that could explain the
	// symptom, each with the command that captures it.
	NotRead []string `json:"not_read,omitempty"`
}

// symptomKinds are the finding kinds that can explain each symptom
// (issue 9 section 2, KERNEL-NOTES). An accept-queue overflow explains a
// timeout with tcp_abort_on_overflow=0 and a reset (or, to many clients, a
// refusal) with 1.
var symptomKinds = map[Symptom][]string{
	SymptomRefused:   {KindNoListener, KindListenerLocalOnly},
	SymptomTimeout:   {KindAcceptQueueOverflow, KindSynQueueOverflow, KindSynFlood, KindSynSentPile, KindConntrackFull},
	SymptomReset:     {KindOrphanPressure, KindTCPMemoryPressure},
	SymptomExhausted: {KindEphemeralPorts, KindFDExhaustion, KindOrphanPressure, KindTWBucketOverflow},
}

// checkPort is the rule of the port the user names: is anything listening
// on it, in this namespace, on an address the clients can reach. Only with
// --port, and only for a refusal (or no symptom): with the others the port
// may be a remote one.
func checkPort(s *sample.Sample, f Focus, _ config.Diagnose) []Observation {
	if f.Port == 0 || (f.Symptom != SymptomRefused && f.Symptom != SymptomNone) {
		return nil
	}
	if !coverageOf(s).listenersOn(f.Port) {
		return nil // not judged; the answer asks for ss -tlnp
	}
	var on []sample.Listener
	for _, l := range s.Listeners {
		if l.Port == f.Port {
			on = append(on, l)
		}
	}
	if len(on) == 0 {
		ev := []string{fmt.Sprintf("%s read; none on port %d", plural(len(s.Listeners), "listener"), f.Port)}
		if s.Netns != "" {
			ev = append(ev, "namespace "+s.Netns)
		}
		return []Observation{{
			Kind: KindNoListener, Subject: fmt.Sprintf("port %d", f.Port), Side: SideApp, Severity: SevCritical,
			Title:       fmt.Sprintf("nothing listens on port %d", f.Port),
			Explanation: fmt.Sprintf("No socket listens on TCP port %d in this network namespace, so the kernel answers every SYN to it with a reset: clients see \"connection refused\". The service is down, listens on another port, or runs in another namespace (a container's listener is not in the host's table). No sysctl is involved.", f.Port),
			Evidence:    ev,
			AppActions: []string{
				fmt.Sprintf("Check the service that should listen on %d: is it running (`systemctl status UNIT`), did it fail to bind (its log: `address already in use`, `permission denied` below net.ipv4.ip_unprivileged_port_start)?", f.Port),
				fmt.Sprintf("If it runs in a container, look in its namespace: `nsenter -t PID -n ss -tlnp '( sport = :%d )'`, and check the port publishing.", f.Port),
			},
		}}
	}
	local := true
	for _, l := range on {
		a, err := netip.ParseAddr(strings.Trim(l.Addr, "[]"))
		local = local && err == nil && a.IsLoopback()
	}
	if !local {
		return nil
	}
	var addrs []string
	for _, l := range on {
		addrs = append(addrs, l.Local)
	}
	return []Observation{{
		Kind: KindListenerLocalOnly, Subject: on[0].Local, Side: SideApp, Severity: SevWarning,
		Title:       fmt.Sprintf("port %d listens on loopback only (%s)", f.Port, strings.Join(addrs, ", ")),
		Explanation: fmt.Sprintf("Port %d is bound to a loopback address only, so connections from other hosts (or other namespaces) are refused; only clients on this host reach it. If the clients come from outside, the application must bind to 0.0.0.0, :: or the host's address. No sysctl is involved.", f.Port),
		Evidence:    []string{fmt.Sprintf("listening on %s only (%s)", strings.Join(addrs, ", "), ownersLong(on[0].Owners))},
		AppActions:  []string{fmt.Sprintf("Bind the service to the address its clients use (e.g. nginx `listen 0.0.0.0:%d;`, `--bind 0.0.0.0`, Docker `-p %d:%d` rather than `-p 127.0.0.1:%d:%d`), then restart it.", f.Port, f.Port, f.Port, f.Port, f.Port)},
	}}
}

// findingPort is the port a finding's subject names ("0.0.0.0:8080",
// "10.0.0.5:5432 from 10.0.0.1", "port 80"), or 0 for a host-, process- or
// namespace-wide subject.
func findingPort(subject string) uint16 {
	if p, ok := strings.CutPrefix(subject, "port "); ok {
		n, _ := strconv.ParseUint(p, 10, 16)
		return uint16(n)
	}
	addr, _, _ := strings.Cut(subject, " from ")
	addr, _, _ = strings.Cut(addr, " (") // "127.0.0.1:6399 (inferred)"
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return ap.Port()
	}
	if i := strings.LastIndex(addr, ":"); i > 0 && !strings.Contains(addr, " ") {
		n, _ := strconv.ParseUint(addr[i+1:], 10, 16)
		return uint16(n)
	}
	return 0
}

// answerSymptom says first whether the evidence explains the symptom, and
// what was not read that could.
func answerSymptom(series []*sample.Sample, r Report, f Focus) *SymptomAnswer {
	if f == (Focus{}) {
		return nil
	}
	last := series[len(series)-1]
	cov := coverageOf(last)
	a := &SymptomAnswer{Symptom: string(f.Symptom), Port: f.Port}
	what := "the symptom"
	switch f.Symptom {
	case SymptomRefused:
		what = "connection refused"
	case SymptomTimeout:
		what = "connection timeouts"
	case SymptomReset:
		what = "connection resets"
	case SymptomExhausted:
		what = "exhaustion (ports, descriptors, sockets)"
	case SymptomNone:
		what = "trouble"
	}
	if f.Port != 0 {
		what += fmt.Sprintf(" on port %d", f.Port)
	}
	abort, okAbort := sysInt(last, "net.ipv4.tcp_abort_on_overflow")
	kinds := map[string]bool{}
	for _, k := range symptomKinds[f.Symptom] {
		kinds[k] = true
	}
	switch f.Symptom {
	case SymptomRefused, SymptomReset:
		kinds[KindAcceptQueueOverflow] = okAbort && abort != 0
	case SymptomTimeout:
		// With tcp_abort_on_overflow=1 an overflow resets at once.
		kinds[KindAcceptQueueOverflow] = !okAbort || abort == 0
	case SymptomNone:
		for k := range kindsAll() {
			kinds[k] = true
		}
	}
	for _, fd := range r.Findings {
		if !kinds[fd.Kind] || fd.Severity == SevInfo && fd.Kind != KindTWBucketOverflow {
			continue
		}
		if p := findingPort(fd.Subject); f.Port != 0 && p != 0 && p != f.Port {
			continue
		}
		a.ExplainedBy = append(a.ExplainedBy, fd.Kind+" on "+fd.Subject)
	}
	a.Explained = len(a.ExplainedBy) > 0

	var notes []string
	if f.Port != 0 && cov.listenersOn(f.Port) {
		var on []string
		v6only := true
		for _, l := range last.Listeners {
			if l.Port == f.Port {
				limit := fmt.Sprintf("Send-Q %d", l.SendQ)
				if l.LimitUnknown {
					limit = "limit not in the capture"
				}
				on = append(on, fmt.Sprintf("%s (Recv-Q %d, %s, %s)", l.Local, l.RecvQ, limit, ownersLong(l.Owners)))
				v6only = v6only && l.Family == "ipv6" && strings.HasPrefix(l.Local, "[")
			}
		}
		if len(on) > 0 {
			notes = append(notes, fmt.Sprintf("Port %d listens on %s in this namespace.", f.Port, strings.Join(on, "; ")))
			if v6only {
				notes = append(notes, fmt.Sprintf("It listens on IPv6 addresses only: if the socket is IPv6-only (IPV6_V6ONLY, or net.ipv6.bindv6only=1), IPv4 clients of port %d are refused. Recent ss prints a dual-stack socket as *:%d and an IPv6-only one as [::]:%d; net-tools prints both as :::%d.", f.Port, f.Port, f.Port, f.Port))
			}
		}
	}
	if okAbort && abort != 0 && (f.Symptom == SymptomRefused || f.Symptom == SymptomTimeout) {
		notes = append(notes, "net.ipv4.tcp_abort_on_overflow = 1: an accept-queue overflow resets the connection instead of letting the client retry; clients see resets, not timeouts.")
	}

	need := func(ok bool, what string) {
		if !ok {
			a.NotRead = append(a.NotRead, what)
		}
	}
	listenTable := "the listener table (ss -tlnp)"
	counters := "the TcpExt drop counters, twice a few seconds apart (nstat -az)"
	sockets := "socket states and destinations (ss -tanp)"
	klog := "the kernel log (dmesg)"
	switch f.Symptom {
	case SymptomRefused, SymptomNone:
		need(cov.listenersOn(f.Port), listenTable)
		need(cov.sysctl("net.ipv4.tcp_abort_on_overflow"), "net.ipv4.tcp_abort_on_overflow (sysctl)")
		need(cov.tcpExt, counters)
	case SymptomTimeout:
		need(cov.listenersOn(f.Port), listenTable)
		need(cov.tcpExt, counters)
		need(cov.sockets, sockets+" for SYN-SENT and SYN-RECV piles")
		need(cov.kernelLog, klog+" for conntrack full and SYN flooding")
		need(cov.sysctl(kSyncookies) && cov.sysctl(kSomaxconn), "net.ipv4.tcp_syncookies and net.core.somaxconn (sysctl)")
	case SymptomReset:
		need(cov.sysctl("net.ipv4.tcp_abort_on_overflow"), "net.ipv4.tcp_abort_on_overflow (sysctl)")
		need(cov.tcpExt, counters)
		need(cov.sockstat && cov.sysctl(kMaxOrphans), "orphans against net.ipv4.tcp_max_orphans (cat /proc/net/sockstat; sysctl)")
		need(cov.sockstatMem && cov.sysctl(kTCPMem), "TCP memory against net.ipv4.tcp_mem (cat /proc/net/sockstat; sysctl)")
		need(cov.kernelLog, klog+" for TCP out of memory and too many orphaned sockets")
	case SymptomExhausted:
		need(cov.sockets, sockets+" for ports per destination")
		need(cov.sysctl(kPortRange), "net.ipv4.ip_local_port_range (sysctl)")
		need(cov.owners, "descriptors per process (ss -tanp with the /proc loop of README.md, or a live sample as root)")
		need(cov.sockstat && cov.sysctl(kMaxOrphans), "orphans against net.ipv4.tcp_max_orphans (cat /proc/net/sockstat; sysctl)")
		need(cov.kernelLog, klog+" for time wait bucket table overflow")
	}

	switch {
	case a.Explained:
		a.Answer = fmt.Sprintf("The evidence explains %s: %s (see (b)).", what, strings.Join(a.ExplainedBy, "; "))
	case len(a.NotRead) > 0:
		a.Answer = fmt.Sprintf("Not explained by what was read: no finding accounts for %s, but the input lacks what could.", what)
	default:
		a.Answer = fmt.Sprintf("Not explained: everything on this host that could account for %s was read and is within its limits. Look outside this namespace: a firewall REJECT or DROP rule, another namespace or container, the address the clients actually use, the peer.", what)
	}
	if len(notes) > 0 {
		a.Answer += " " + strings.Join(notes, " ")
	}
	return a
}

func kindsAll() map[string]bool {
	m := map[string]bool{}
	for _, r := range Rules {
		for _, k := range r.Kinds {
			m[k] = true
		}
	}
	return m
}
