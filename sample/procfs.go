package sample

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/sockwarden/sockwarden/internal/sysval"
)

// ParseNetstat reads the "Header: names" / "Header: values" line pairs of
// /proc/net/netstat and /proc/net/snmp (or both concatenated) into a map
// keyed as nstat names counters: the header without its colon followed by
// the field name ("TcpExtListenOverflows", "TcpActiveOpens").
//
// Negative values (Tcp MaxConn is -1: "no limit") are not counters and are
// left out. A names line without its values line, a count mismatch or a
// value that is not a number is an ErrParse naming the line.
func ParseNetstat(r io.Reader) (map[string]uint64, error) {
	out := make(map[string]uint64, 256)
	if err := parseNetstatInto(out, r, make([]byte, 0, 16<<10)); err != nil {
		return nil, err
	}
	return out, nil
}

// parseNetstatInto is ParseNetstat adding to out, with buf as the line
// buffer: a live census parses snmp and netstat straight into
// Sample.Counters. Nothing is added when it fails.
func parseNetstatInto(out map[string]uint64, r io.Reader, buf []byte) error {
	type counter struct {
		name string
		v    uint64
	}
	var got []counter
	sc := bufio.NewScanner(r)
	sc.Buffer(buf, 1<<20)
	var (
		names     []string
		header    string
		headerLn  int
		lineNo    int
		wantValue bool
	)
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		prefix, rest, ok := strings.Cut(line, ":")
		if !ok || prefix == "" || strings.ContainsAny(prefix, " \t") {
			return fmt.Errorf("%w: line %d: want \"Header: fields\", got %q", ErrParse, lineNo, procClip(line))
		}
		fields := strings.Fields(rest)
		if !wantValue {
			names, header, headerLn, wantValue = fields, prefix, lineNo, true
			continue
		}
		wantValue = false
		if prefix != header {
			return fmt.Errorf("%w: line %d: values for %q follow names for %q (line %d)", ErrParse, lineNo, prefix, header, headerLn)
		}
		if len(fields) != len(names) {
			return fmt.Errorf("%w: line %d: %d values for %d %s names (line %d)", ErrParse, lineNo, len(fields), len(names), header, headerLn)
		}
		for i, f := range fields {
			if strings.HasPrefix(f, "-") {
				if _, err := strconv.ParseInt(f, 10, 64); err != nil {
					return fmt.Errorf("%w: line %d: %s%s: %q is not a number", ErrParse, lineNo, header, names[i], f)
				}
				continue
			}
			v, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				return fmt.Errorf("%w: line %d: %s%s: %q is not a number", ErrParse, lineNo, header, names[i], f)
			}
			got = append(got, counter{header + names[i], v})
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: line %d: %w", ErrParse, lineNo+1, err)
	}
	if wantValue {
		return fmt.Errorf("%w: line %d: %s names without a values line (truncated?)", ErrParse, headerLn, header)
	}
	for _, c := range got {
		out[c.name] = c.v
	}
	return nil
}

// ParseSockstat reads /proc/net/sockstat and /proc/net/sockstat6 (either,
// or both concatenated). Protocols other than TCP and TCP6 are skipped; a
// line that is not "PROTO: key value ..." is an ErrParse naming the line.
func ParseSockstat(r io.Reader) (Sockstat, error) {
	var s Sockstat
	sc := bufio.NewScanner(r)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		proto, rest, ok := strings.Cut(line, ":")
		if !ok || proto == "" || strings.ContainsAny(proto, " \t") {
			return Sockstat{}, fmt.Errorf("%w: line %d: want \"PROTO: key value ...\", got %q", ErrParse, lineNo, procClip(line))
		}
		f := strings.Fields(rest)
		if len(f)%2 != 0 {
			return Sockstat{}, fmt.Errorf("%w: line %d: %s: odd number of fields", ErrParse, lineNo, proto)
		}
		for i := 0; i < len(f); i += 2 {
			v, err := strconv.Atoi(f[i+1])
			if err != nil || v < 0 {
				return Sockstat{}, fmt.Errorf("%w: line %d: %s %s: %q is not a count", ErrParse, lineNo, proto, f[i], f[i+1])
			}
			switch proto + " " + f[i] {
			case "sockets used":
				s.SocketsUsed = v
			case "TCP inuse":
				s.TCPInUse = v
			case "TCP orphan":
				s.TCPOrphan = v
			case "TCP tw":
				s.TCPTimeWait = v
			case "TCP alloc":
				s.TCPAlloc = v
			case "TCP mem":
				s.TCPMemPages = v
			case "TCP6 inuse":
				s.TCP6InUse = v
			}
		}
	}
	if err := sc.Err(); err != nil {
		return Sockstat{}, fmt.Errorf("%w: line %d: %w", ErrParse, lineNo+1, err)
	}
	return s, nil
}

func procClip(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// procNoData maps "this kernel or host has no such source" to ErrNoData.
func procNoData(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP) {
		return fmt.Errorf("%w: %w", ErrNoData, err)
	}
	return err
}

// readProcFile reads a small /proc file whole into buf (grown when too
// small) with bare open/read/close: os.ReadFile also registers each file
// with the poller (refused for /proc files) and stats it, three syscalls
// out of six, for the 16 files a census reads. Errors are os.ReadFile's.
func readProcFile(path string, buf []byte) ([]byte, error) {
	var fd int
	var err error
	for {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, max(cap(buf), 512))
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		case n == 0:
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// readNetstat parses one counters file (netstat or snmp format) into out,
// buf being a scratch buffer.
func readNetstat(out map[string]uint64, path string, buf []byte) error {
	b, err := readProcFile(path, buf)
	if err != nil {
		return procNoData(err)
	}
	if err := parseNetstatInto(out, bytes.NewReader(b), b[len(b):]); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// readSockstat parses sockstat and, when present, sockstat6 under dir.
func readSockstat(dir string, buf []byte) (Sockstat, error) {
	b, err := readProcFile(filepath.Join(dir, "sockstat"), buf)
	if err != nil {
		return Sockstat{}, procNoData(err)
	}
	s, err := ParseSockstat(bytes.NewReader(b))
	if err != nil {
		return Sockstat{}, fmt.Errorf("%s: %w", filepath.Join(dir, "sockstat"), err)
	}
	b, err = readProcFile(filepath.Join(dir, "sockstat6"), buf)
	if err != nil {
		// No IPv6 on this kernel: TCP6InUse stays 0.
		return s, nil
	}
	s6, err := ParseSockstat(bytes.NewReader(b))
	if err != nil {
		return Sockstat{}, fmt.Errorf("%s: %w", filepath.Join(dir, "sockstat6"), err)
	}
	s.TCP6InUse = s6.TCP6InUse
	return s, nil
}

// readSysctl reads one sysctl by dotted name under procRoot/sys, value with
// whitespace folded to single spaces.
func readSysctl(procRoot, key string) (string, error) {
	var buf [256]byte
	b, err := readProcFile(filepath.Join(procRoot, "sys", strings.ReplaceAll(key, ".", "/")), buf[:])
	if err != nil {
		return "", procNoData(err)
	}
	return sysval.Fold(string(b)), nil
}

// readCounters fills s.Counters, s.Sockstat and s.Sysctls from the /proc
// files of the calling thread's namespace (netDir is its /proc/.../net).
// Missing sources are recorded, not returned.
func readCounters(s *Sample, procRoot, netDir string) {
	s.Counters = make(map[string]uint64, 512)
	buf := make([]byte, 0, 16<<10) // netstat is ~5 KB, snmp ~2 KB
	for _, name := range []string{"snmp", "netstat"} {
		if err := readNetstat(s.Counters, filepath.Join(netDir, name), buf); err != nil {
			s.noteMissing("/proc/net/"+name, err)
		}
	}
	st, err := readSockstat(netDir, buf)
	if err != nil {
		s.noteMissing("/proc/net/sockstat", err)
	}
	s.Sockstat = st
	s.Sysctls = make(map[string]string, len(SysctlKeys))
	for _, k := range SysctlKeys {
		v, err := readSysctl(procRoot, k)
		if err != nil {
			if globalSysctl[k] && errors.Is(err, ErrNoData) {
				err = fmt.Errorf("%w: a global sysctl, kept by the initial network namespace only; a child namespace has no %s (the host's value applies: run sockwarden in the host's namespace, with --netns for this one, to read it)", ErrNoData, k)
			}
			s.noteMissing("sysctl "+k, err)
			continue
		}
		s.Sysctls[k] = v
	}
}

// globalSysctl marks the recorded sysctls that are not per network
// namespace: /proc/sys shows them in the initial namespace only.
var globalSysctl = map[string]bool{"net.ipv4.tcp_mem": true, "net.ipv4.tcp_max_orphans": true}

// globalSysctlKeys lists globalSysctl's keys in SysctlKeys order.
func globalSysctlKeys() []string {
	var ks []string
	for _, k := range SysctlKeys {
		if globalSysctl[k] {
			ks = append(ks, k)
		}
	}
	return ks
}

// addGlobalSysctls adds to have the global sysctls that another
// namespace's /proc/sys did not show, read in the calling thread's own
// namespace when that has them: only the initial namespace does, and its
// values are the ones every namespace runs under (sockstat's TCP mem and
// orphan counts, which they bound, are host-wide too). It returns the keys
// it added, in SysctlKeys order; a sampler that itself runs in a child
// namespace adds none.
func addGlobalSysctls(have map[string]string, procRoot string) []string {
	var added []string
	for _, k := range globalSysctlKeys() {
		if _, ok := have[k]; ok {
			continue
		}
		if v, err := readSysctl(procRoot, k); err == nil {
			have[k] = v
			added = append(added, k)
		}
	}
	return added
}

// fillGlobalSysctls completes a live sample of another namespace with
// addGlobalSysctls; what it could not read stays listed as missing.
func fillGlobalSysctls(s *Sample, procRoot string) []string {
	filled := addGlobalSysctls(s.Sysctls, procRoot)
	for _, k := range filled {
		s.dropMissing("sysctl " + k)
	}
	return filled
}

// dropMissing forgets a missing source that was found after all.
func (s *Sample) dropMissing(source string) {
	s.Missing = slices.DeleteFunc(s.Missing, func(m Missing) bool { return m.Source == source })
}

// noteMissing records a missing source once.
func (s *Sample) noteMissing(source string, err error) {
	reason := err.Error()
	for _, m := range s.Missing {
		if m.Source == source {
			return
		}
	}
	s.Missing = append(s.Missing, Missing{Source: source, Reason: reason})
}
