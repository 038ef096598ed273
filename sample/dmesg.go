package sample

import (
	"errors"
	"io"
	"strconv"
	"strings"
	"time"
)

// DmesgEvent is a kernel log line from dmesg text that ClassifyKernelLine
// recognised, with the stamp the line carried.
type DmesgEvent struct {
	// Event.Time is set for the forms that print wall-clock time
	// (dmesg -T, --time-format iso); Seq is always 0.
	Event KernelEvent
	// SinceBoot is the "[seconds.micros]" stamp of plain dmesg (and -x,
	// -r), valid when HasSinceBoot; the bundle reader turns it into wall
	// time with the snapshot's date and /proc/uptime.
	SinceBoot    time.Duration
	HasSinceBoot bool
}

var (
	// dmesg -x: "kern  :warn  : [  524.253683] TCP: ..."
	dmesgFacilityRE = lazyRE(`^[a-z]+\s*:[a-z]+\s*:\s?`)
	// dmesg -r: "<4>[  524.253683] TCP: ..."
	dmesgRawRE = lazyRE(`^<\d+>`)
	// dmesg --time-format iso: "2026-11-24T00:02:47,367629+00:00 TCP: ..."
	dmesgISORE = lazyRE(`^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:[,.](\d+))?([+-]\d\d:?\d\d|Z) `)
	// journalctl -k / syslog: "Nov 24 00:02:47 host kernel: TCP: ..."
	dmesgSyslogRE = lazyRE(`^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ kernel: `)
)

// ParseDmesg reads kernel log text as printed by dmesg (plain
// "[ 524.253683] msg", -T "[Tue Nov 24 00:02:47 2026] msg", -x, -r,
// --time-format iso, -t without stamps) or journalctl -k, and returns the
// lines ClassifyKernelLine recognises (SYN flooding, TCP out of memory, too
// many orphans, conntrack full, port-range parity). Other lines are kernel
// chatter and are skipped. A cut last line is an ErrParse naming the file
// and line. dmesg -T stamps are read in the local time zone, as dmesg
// printed them.
func ParseDmesg(r io.Reader, name string) ([]DmesgEvent, error) {
	lr := newLineReader(r, name)
	var out []DmesgEvent
	for {
		line, err := lr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if lr.cut && strings.TrimSpace(line) != "" {
			return nil, lr.truncated("no newline after the last kernel log line")
		}
		ev, ok := parseDmesgLine(line)
		if ok {
			out = append(out, ev)
		}
	}
	return out, nil
}

func parseDmesgLine(line string) (DmesgEvent, bool) {
	var de DmesgEvent
	// The message ClassifyKernelLine gets is a part of line (the
	// prefixes below only cut it): a line without any of its substrings
	// is chatter, and skips the four expressions (most of a ring is).
	if kernelLineKind(line) < 0 {
		return de, false
	}
	msg := dmesgFacilityRE().ReplaceAllString(line, "")
	msg = dmesgRawRE().ReplaceAllString(msg, "")
	switch {
	case strings.HasPrefix(msg, "["):
		end := strings.IndexByte(msg, ']')
		if end < 0 {
			break
		}
		stamp := strings.TrimSpace(msg[1:end])
		if secs, err := strconv.ParseFloat(stamp, 64); err == nil && secs >= 0 && secs < 1e10 {
			de.SinceBoot = time.Duration(secs * float64(time.Second)).Round(time.Microsecond)
			de.HasSinceBoot = true
		} else if t, err := time.ParseInLocation("Mon Jan _2 15:04:05 2006", stamp, time.Local); err == nil {
			de.Event.Time = t
		}
		msg = strings.TrimPrefix(msg[end+1:], " ")
	default:
		// One match each: MatchString before FindStringSubmatch ran the
		// expression twice on every stamped line.
		if m := dmesgISORE().FindStringSubmatch(msg); m != nil {
			ts := m[1]
			if m[2] != "" {
				ts += "." + m[2]
			}
			zone := m[3]
			if len(zone) == 5 { // +0000
				zone = zone[:3] + ":" + zone[3:]
			}
			if t, err := time.Parse("2006-01-02T15:04:05.999999999Z07:00", ts+zone); err == nil {
				de.Event.Time = t
			}
			msg = msg[len(m[0]):]
		} else if p := dmesgSyslogRE().FindString(msg); p != "" {
			msg = msg[len(p):]
		}
	}
	ev, ok := ClassifyKernelLine(msg)
	if !ok {
		return de, false
	}
	ev.Time = de.Event.Time
	de.Event = ev
	return de, true
}
