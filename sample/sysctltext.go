package sample

import (
	"errors"
	"io"
	"strings"
)

// ParseSysctlText reads sysctl settings as people capture them:
//
//	net.core.somaxconn = 4096                (sysctl -a, sysctl KEY ...)
//	net.ipv4.ip_local_port_range = 32768	60999
//	net.core.somaxconn=4096                  (sysctl -e -n style edits, sysctl.d files)
//	/proc/sys/net/core/somaxconn:4096        (grep -r . /proc/sys/net/core)
//
// Keys are returned in dotted form, values with whitespace folded to single
// spaces. Comments (# ;) and blank lines are skipped; "sysctl: permission
// denied on key ..." lines (stderr captured with 2>&1) and other lines that
// are not key/value pairs are noted, not fatal. A file without a single
// key/value pair, or whose last line has no newline (a cut copy), is an ErrParse naming the
// file and line.
func ParseSysctlText(r io.Reader, name string) (map[string]string, []Missing, error) {
	lr := newLineReader(r, name)
	nt := notes{file: name}
	out := map[string]string{}
	firstBad := 0
	lastKey := ""
	for {
		line, err := lr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		t := strings.TrimSpace(line)
		if t == "" || t[0] == '#' || t[0] == ';' {
			continue
		}
		if lr.cut {
			return nil, nil, lr.truncated("no newline after the last line")
		}
		k, v, why := parseSysctlLine(t)
		if why != "" {
			if firstBad == 0 {
				firstBad = lr.n
			}
			nt.add(lr.n, why, line)
			continue
		}
		if k == lastKey {
			// sysctl -a prints a multi-line value as one line per
			// value line under the same key (kernel.core_modes).
			out[k] = foldSpace(out[k] + " " + v)
		} else {
			out[k] = v
		}
		lastKey = k
	}
	if len(out) == 0 {
		if firstBad == 0 {
			return nil, nil, lr.errf(1, "empty: no \"key = value\" line")
		}
		return nil, nil, lr.errf(firstBad, "not sysctl output: no \"key = value\" line")
	}
	return out, nt.list(), nil
}

func parseSysctlLine(t string) (key, value, why string) {
	if strings.HasPrefix(t, "sysctl:") {
		return "", "", "sysctl error message"
	}
	if strings.HasPrefix(t, "/proc/sys/") {
		k, v, ok := strings.Cut(t, ":")
		if !ok {
			return "", "", "/proc/sys path without \":value\""
		}
		key = strings.ReplaceAll(strings.TrimPrefix(k, "/proc/sys/"), "/", ".")
		return key, foldSpace(v), checkSysctlKey(key)
	}
	k, v, ok := strings.Cut(t, "=")
	if !ok {
		return "", "", "no \"=\""
	}
	key = strings.TrimSpace(k)
	return key, foldSpace(v), checkSysctlKey(key)
}

// checkSysctlKey accepts what the kernel names sysctls with: letters,
// digits, '_', '-', '.', and '/' (sysctl prints interface names that
// contain dots with '/': net.ipv4.conf.eth0/100.rp_filter).
func checkSysctlKey(k string) string {
	if k == "" {
		return "empty key"
	}
	for _, c := range k {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-', c == '.', c == '/', c == '@', c == ':', c == '+':
		default:
			return "key has a character a sysctl name cannot have"
		}
	}
	if strings.Contains(k, "..") || k[0] == '.' {
		return "key is not a dotted name"
	}
	return ""
}
