package diagnose

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/sockwarden/sockwarden/sample"
)

// sysInt reads an integer sysctl from a sample.
func sysInt(s *sample.Sample, key string) (int64, bool) {
	v, ok := s.Sysctls[key]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	return n, err == nil
}

// sysInts reads a sysctl of several integers ("32768 60999").
func sysInts(s *sample.Sample, key string, n int) ([]int64, bool) {
	v, ok := s.Sysctls[key]
	if !ok {
		return nil, false
	}
	f := strings.Fields(v)
	if len(f) != n {
		return nil, false
	}
	out := make([]int64, n)
	for i, x := range f {
		y, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return nil, false
		}
		out[i] = y
	}
	return out, true
}

// ownerName is "pid 1234 (nginx)".
func ownerName(o sample.Owner) string {
	return fmt.Sprintf("pid %d (%s)", o.PID, o.Comm)
}

// ownerLong is "nginx pid 1234, unit nginx.service".
func ownerLong(o sample.Owner) string {
	if o.Unit != "" {
		return fmt.Sprintf("%s pid %d, unit %s", o.Comm, o.PID, o.Unit)
	}
	return fmt.Sprintf("%s pid %d", o.Comm, o.PID)
}

func ownersLong(os []sample.Owner) string {
	if len(os) == 0 {
		return "owner unknown"
	}
	var parts []string
	for _, o := range os {
		parts = append(parts, ownerLong(o))
	}
	return strings.Join(parts, "; ")
}

// upperFirst capitalises the first letter of a sentence.
func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// nsPrefix is what a person puts before a command to run it in the
// sample's namespace.
func nsPrefix(netns string) string {
	if netns == "" {
		return ""
	}
	if name, ok := strings.CutPrefix(netns, "/run/netns/"); ok && !strings.Contains(name, "/") {
		return "ip netns exec " + name + " "
	}
	return "nsenter --net=" + netns + " "
}

func perSec(n uint64, secs float64) string {
	if secs <= 0 {
		return "?"
	}
	return fmt.Sprintf("%.1f/s", float64(n)/secs)
}

// parsePortSet reads ip_local_reserved_ports for a diagnosis: what can be
// read is used, a malformed part (which the kernel never prints) skipped.
func parsePortSet(s string) sample.PortSet {
	ps, _ := sample.ParsePortSet(s)
	return ps
}

// listenerFor finds the listener a kernel log line names (by port, the
// address when it matches).
func listenerFor(s *sample.Sample, addr string, port uint16) *sample.Listener {
	var byPort *sample.Listener
	for i := range s.Listeners {
		l := &s.Listeners[i]
		if l.Port != port {
			continue
		}
		if l.Addr == addr {
			return l
		}
		if byPort == nil {
			byPort = l
		}
	}
	return byPort
}

// peakOf returns the watch peak of a listener in a sample, or nil.
func peakOf(s *sample.Sample, local string) *sample.ListenerPeak {
	if s == nil || s.Watch == nil {
		return nil
	}
	for i := range s.Watch.Peaks {
		if s.Watch.Peaks[i].Local == local {
			return &s.Watch.Peaks[i]
		}
	}
	return nil
}

// atLimit reports whether a listener's queue is full in a snapshot.
func atLimit(l *sample.Listener) bool {
	if l != nil && l.LimitUnknown {
		return overflowing(l)
	}
	return l != nil && l.RecvQ > 0 && l.RecvQ >= l.SendQ
}

// overflowing reports whether a listener's queue holds more than its limit:
// the kernel's queue is full when its length exceeds the limit, so Recv-Q
// reads Send-Q + 1 in a snapshot of a queue that is refusing handshakes.
//
// Where the capture does not show the limit (net-tools and busybox
// netstat print 0 for a listener's Send-Q: LimitUnknown), a queue reads as
// overflowing when its length is a common backlog plus one (the same
// signature: 51 for Java's 50, 101 for Tomcat's 100, 129, 512 ...), or at
// least 50 connections wait: a queue that long in a snapshot is not being
// drained, whatever its limit.
func overflowing(l *sample.Listener) bool {
	if l == nil {
		return false
	}
	if l.LimitUnknown {
		return l.RecvQ >= 50 || commonBacklog(l.RecvQ-1)
	}
	return l.RecvQ > l.SendQ
}

// commonBacklog reports whether n is a listen() backlog runtimes use by
// default (Java 50, Tomcat 100, 128, nginx/Node.js/Redis 511, 1024, 2048,
// 4096, 65535).
func commonBacklog(n uint32) bool {
	switch n {
	case 50, 100, 128, 511, 1024, 2048, 4096, 65535:
		return true
	}
	return false
}

// localListener returns the listener of this sample that a connection to
// addr:port reaches (same address, or a wildcard), or nil.
func localListener(s *sample.Sample, addr string, port uint16) *sample.Listener {
	for i := range s.Listeners {
		l := &s.Listeners[i]
		if l.Port != port {
			continue
		}
		switch l.Addr {
		case addr, "0.0.0.0", "::", "*", "[::]", "":
			return l
		}
	}
	return nil
}
