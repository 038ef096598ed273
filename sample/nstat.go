package sample

import (
	"errors"
	"io"
	"strconv"
	"strings"
)

// ParseNstat reads `nstat -az` (or -asz, -a) output:
//
//	#kernel
//	IpInReceives                    158                0.0
//	TcpExtListenOverflows           0                  0.0
//
// into counters keyed by nstat's names, which are the names a Sample uses
// ("TcpExtListenOverflows"). The rate column is ignored. nstat also prints
// the IPv6 counters of /proc/net/snmp6 (Ip6..., Icmp6..., Udp6...); they are
// kept. Lines that are not "Name value [rate]" are noted; a file without a
// counter, or whose last line has no newline (a cut copy), is an ErrParse naming the file and
// line.
func ParseNstat(r io.Reader, name string) (map[string]uint64, []Missing, error) {
	lr := newLineReader(r, name)
	nt := notes{file: name}
	out := map[string]uint64{}
	firstBad := 0
	for {
		line, err := lr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if lr.cut {
			return nil, nil, lr.truncated("no newline after the last line")
		}
		why := ""
		var v uint64
		switch {
		case len(f) < 2 || len(f) > 3:
			why = "want \"Name value rate\""
		case !nstatName(f[0]):
			why = "counter name is not a word"
		default:
			v, err = strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				why = "value is not a number"
			}
		}
		if why != "" {
			if firstBad == 0 {
				firstBad = lr.n
			}
			nt.add(lr.n, why, line)
			continue
		}
		out[f[0]] = v
	}
	if len(out) == 0 {
		if firstBad == 0 {
			return nil, nil, lr.errf(1, "empty: no counter line")
		}
		return nil, nil, lr.errf(firstBad, "not nstat output: no \"Name value\" line")
	}
	return out, nt.list(), nil
}

func nstatName(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return s != ""
}
