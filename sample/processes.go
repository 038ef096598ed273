package sample

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// processes.txt gives what `ss -p` leaves out of a bundle: for each
// process, its open descriptors, soft RLIMIT_NOFILE and systemd unit. One
// line per process, the command name last because it may hold spaces:
//
//	PID FDS NOFILE UNIT COMM
//	4242 252 256 - fd-hog
//	812 37 1048576 nginx.service nginx
//
// FDS is `ls /proc/PID/fd | wc -l`, NOFILE the soft "Max open files" of
// /proc/PID/limits (a number or "unlimited"), UNIT the systemd unit of
// /proc/PID/cgroup or "-", COMM /proc/PID/comm. A person makes it with the
// shell loop of README.md ("Captured bundles"); `sockwarden collect`
// writes the same lines (writeProcesses). The header line is optional.

// unlimitedNofile is how procfs (and this file) reads "unlimited".
const unlimitedNofile = math.MaxUint64

// ParseProcesses reads processes.txt into owners by pid. Blank lines, the
// "PID FDS NOFILE UNIT COMM" header and # comments are skipped; a line that
// is not "PID FDS NOFILE UNIT COMM" (a process that exited while the loop
// read it leaves empty fields) is noted, not fatal. A file without a single
// such line (a header alone is an empty list), or whose last line has no newline (a cut copy), is an ErrParse
// naming the file and line.
func ParseProcesses(r io.Reader, name string) (map[int]Owner, []Missing, error) {
	lr := newLineReader(r, name)
	nt := notes{file: name}
	out := map[int]Owner{}
	firstBad := 0
	header := false
	for {
		line, err := lr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		t := strings.TrimSpace(line)
		if t == "" || t[0] == '#' {
			continue
		}
		if strings.HasPrefix(t, "PID ") && !header && len(out) == 0 {
			header = true
			continue
		}
		if lr.cut {
			return nil, nil, lr.truncated("no newline after the last line")
		}
		o, why := parseProcessLine(t)
		if why != "" {
			if firstBad == 0 {
				firstBad = lr.n
			}
			nt.add(lr.n, why, line)
			continue
		}
		if _, dup := out[o.PID]; dup {
			nt.add(lr.n, "pid listed twice, the first line kept", line)
			continue
		}
		out[o.PID] = o
	}
	if len(out) == 0 && !(header && firstBad == 0) {
		if firstBad == 0 {
			return nil, nil, lr.errf(1, "empty: no \"PID FDS NOFILE UNIT COMM\" line")
		}
		return nil, nil, lr.errf(firstBad, "not a process list: no \"PID FDS NOFILE UNIT COMM\" line")
	}
	return out, nt.list(), nil
}

// parseProcessLine reads "PID FDS NOFILE UNIT COMM"; FDS and NOFILE may be
// "-" (unknown), UNIT is "-" for none.
func parseProcessLine(t string) (Owner, string) {
	var f [4]string
	rest := t
	for i := range f {
		rest = strings.TrimLeft(rest, " \t")
		j := strings.IndexAny(rest, " \t")
		if j < 0 {
			return Owner{}, "want 5 fields: PID FDS NOFILE UNIT COMM"
		}
		f[i], rest = rest[:j], rest[j:]
	}
	comm := strings.TrimLeft(rest, " \t")
	if comm == "" {
		return Owner{}, "want 5 fields: PID FDS NOFILE UNIT COMM"
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 0 || pid > 1<<22 {
		return Owner{}, "PID is not a process id"
	}
	o := Owner{PID: pid, Comm: comm}
	if f[1] != "-" {
		n, err := strconv.Atoi(f[1])
		if err != nil || n < 0 || n > 1<<30 {
			return Owner{}, "FDS is not a descriptor count"
		}
		o.FDs = n
	}
	switch f[2] {
	case "-":
	case "unlimited":
		o.FDLimit = unlimitedNofile
	default:
		n, err := strconv.ParseUint(f[2], 10, 64)
		if err != nil {
			return Owner{}, "NOFILE is not a limit (a number or unlimited)"
		}
		o.FDLimit = n
	}
	if f[3] != "-" {
		if why := checkUnitName(f[3]); why != "" {
			return Owner{}, why
		}
		o.Unit = f[3]
	}
	return o, ""
}

// checkUnitName accepts what systemd names units with: letters, digits,
// ":-_.\@", and a type suffix after a dot.
func checkUnitName(u string) string {
	for _, c := range u {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.ContainsRune(":-_.\\@", c):
		default:
			return "UNIT has a character a systemd unit name cannot have"
		}
	}
	if i := strings.LastIndexByte(u, '.'); i <= 0 || i == len(u)-1 {
		return "UNIT is not a unit name (name.service, name.scope) or -"
	}
	return ""
}

// formatProcessLine writes an owner as processes.txt holds it.
func formatProcessLine(w io.Writer, o Owner) {
	fds, limit, unit := "-", "-", "-"
	if o.FDs > 0 {
		fds = strconv.Itoa(o.FDs)
	}
	switch o.FDLimit {
	case 0:
	case unlimitedNofile:
		limit = "unlimited"
	default:
		limit = strconv.FormatUint(o.FDLimit, 10)
	}
	if o.Unit != "" {
		unit = o.Unit
	}
	// A command name may be anything a process sets (prctl): keep it on
	// its line.
	// Bytes, not runes: a comm need not be UTF-8, and is kept as it is.
	b := []byte(o.Comm)
	for i, c := range b {
		if c < ' ' || c == 0x7f {
			b[i] = '?'
		}
	}
	comm := string(b)
	if comm == "" {
		comm = "?"
	}
	fmt.Fprintf(w, "%d %s %s %s %s\n", o.PID, fds, limit, unit, comm)
}

// processOwners lists what processes.txt holds for a collect: the
// processes of the namespace nsID (0: all) that own sockets, read the way
// the live owner scan reads them (scanOwnersScoped, fillOwner), and the
// processes outside it that ss named as owners (a process may hold sockets
// of a namespace it does not live in), by pid.
func processOwners(procRoot string, nsID uint64, named []int) ([]Owner, *Missing, error) {
	x, _, miss, err := scanOwnersScoped(procRoot, ownerScan{netns: nsID})
	if err != nil {
		return nil, nil, err
	}
	out := slices.Clone(x.owners)
	have := map[int]bool{}
	for _, o := range out {
		have[o.PID] = true
	}
	var more []int
	for _, pid := range named {
		if !have[pid] {
			have[pid] = true
			more = append(more, pid)
		}
	}
	if len(more) > 0 {
		y, _, _, err := scanOwnersScoped(procRoot, ownerScan{pids: more})
		if err == nil {
			out = append(out, y.owners...)
		}
	}
	slices.SortFunc(out, func(a, b Owner) int { return cmp.Compare(a.PID, b.PID) })
	return out, miss, nil
}

// fillFromProcesses gives every owner of smp (listeners' and the process
// table's) the descriptor count, limit and unit processes.txt has for its
// pid. An owner whose pid is not there, or is there under another command
// name (the pid was reused between the two captures), is returned.
func fillFromProcesses(smp *Sample, procs map[int]Owner) (unknown []Owner) {
	seen := map[int]bool{}
	fill := func(o *Owner) {
		p, ok := procs[o.PID]
		if ok && strings.TrimSpace(p.Comm) == strings.TrimSpace(o.Comm) {
			o.FDs, o.FDLimit, o.Unit = p.FDs, p.FDLimit, p.Unit
			return
		}
		if !seen[o.PID] {
			seen[o.PID] = true
			unknown = append(unknown, *o)
		}
	}
	for i := range smp.Listeners {
		for j := range smp.Listeners[i].Owners {
			fill(&smp.Listeners[i].Owners[j])
		}
	}
	for i := range smp.Processes {
		fill(&smp.Processes[i].Owner)
	}
	return unknown
}
