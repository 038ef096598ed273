package sample

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// PortSet is a set of ports, written as the kernel writes
// net.ipv4.ip_local_reserved_ports: "8080,9000-9100" ("" for none).
type PortSet map[int]bool

// ParsePortSet parses that syntax. Every port or range lo-hi within
// 1..65535 is kept; a part that is not one is skipped and named in the
// error, so a reader can use what it got (diagnose) or refuse the value
// outright (the remediate guard). The kernel never prints such parts.
func ParsePortSet(s string) (PortSet, error) {
	ps := PortSet{}
	var errs []error
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		a, b, isRange := strings.Cut(part, "-")
		lo, err1 := strconv.Atoi(strings.TrimSpace(a))
		hi, err2 := lo, error(nil)
		if isRange {
			hi, err2 = strconv.Atoi(strings.TrimSpace(b))
		}
		if err1 != nil || err2 != nil || lo < 1 || hi > 65535 || lo > hi {
			errs = append(errs, fmt.Errorf("bad port or range %q", part))
			continue
		}
		for p := lo; p <= hi; p++ {
			ps[p] = true
		}
	}
	return ps, errors.Join(errs...)
}

// String formats the set the way the kernel prints it.
func (ps PortSet) String() string {
	ports := make([]int, 0, len(ps))
	for p := range ps {
		ports = append(ports, p)
	}
	sort.Ints(ports)
	var parts []string
	for i := 0; i < len(ports); {
		j := i
		for j+1 < len(ports) && ports[j+1] == ports[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, strconv.Itoa(ports[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", ports[i], ports[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

// CountIn counts the ports of the set within [lo, hi].
func (ps PortSet) CountIn(lo, hi int) int {
	n := 0
	for p := range ps {
		if p >= lo && p <= hi {
			n++
		}
	}
	return n
}
