package sample

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Kinds of kernel log events (KernelEvent.Kind).
const (
	KernelSynFlood        = "syn-flood"
	KernelTCPOOM          = "tcp-oom"
	KernelTooManyOrphans  = "too-many-orphans"
	KernelConntrackFull   = "conntrack-full"
	KernelPortRangeParity = "port-range-parity"
	// KernelTWBucketOverflow: "TCP: time wait bucket table overflow",
	// net.ipv4.tcp_max_tw_buckets reached (the closing socket skips
	// TIME-WAIT).
	KernelTWBucketOverflow = "tw-bucket-overflow"
)

var (
	// "TCP: request_sock_TCP: Possible SYN flooding on port 127.0.0.1:8080. Sending cookies."
	// "TCP: request_sock_TCPv6: Possible SYN flooding on port [::1]:8443. Dropping request."
	// 4.x: "TCP: TCP: Possible SYN flooding on port 80. Sending cookies.  Check SNMP counters."
	// 2.6/3.x: "possible SYN flooding on port 80. Sending cookies."
	synFloodRE = lazyRE(`(?i)possible SYN flooding on port (\S+?)\.\s+(Sending cookies|Dropping request)`)
	// dmesg's "[   524.253683] " prefix, with or without -T style dates.
	dmesgStampRE = lazyRE(`^\[\s*[^\]]*\]\s?`)
)

// ClassifyKernelLine recognises the kernel log lines that matter to TCP
// diagnosis: SYN flooding (with the listener's address and port and whether
// cookies were sent or the request dropped), TCP out of memory, too many
// orphaned sockets, a full conntrack table, and the port-range parity
// warning. msg is the message part of a /dev/kmsg record or of a dmesg line;
// a leading dmesg "[ seconds]" stamp is skipped. Seq and Time are left for
// the caller.
func ClassifyKernelLine(msg string) (KernelEvent, bool) {
	msg = strings.TrimRight(dmesgStampRE().ReplaceAllString(msg, ""), "\r\n")
	ev := KernelEvent{Line: msg}
	switch {
	case strings.Contains(msg, "SYN flooding on port"):
		m := synFloodRE().FindStringSubmatch(msg)
		if m == nil {
			return KernelEvent{}, false
		}
		ev.Kind = KernelSynFlood
		ev.Addr, ev.Port = splitFloodPort(m[1])
		if strings.EqualFold(m[2], "Sending cookies") {
			ev.Action = "cookies"
		} else {
			ev.Action = "drop"
		}
	case strings.Contains(msg, "out of memory -- consider tuning tcp_mem"):
		ev.Kind = KernelTCPOOM
	case strings.Contains(msg, "too many orphaned sockets"), strings.Contains(msg, "too many of orphaned sockets"):
		ev.Kind = KernelTooManyOrphans
	case strings.Contains(msg, "nf_conntrack: table full, dropping packet"):
		ev.Kind = KernelConntrackFull
	case strings.Contains(msg, "time wait bucket table overflow"):
		ev.Kind = KernelTWBucketOverflow
	case strings.Contains(msg, "ip_local_port_range: prefer different parity"):
		ev.Kind = KernelPortRangeParity
	default:
		return KernelEvent{}, false
	}
	return ev, true
}

// splitFloodPort splits "127.0.0.1:8080", "[::1]:8443" or "80".
func splitFloodPort(s string) (string, uint16) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().String(), ap.Port()
	}
	if p, err := strconv.ParseUint(s, 10, 16); err == nil {
		return "", uint16(p)
	}
	return "", 0
}

// kmsgRecord is one parsed /dev/kmsg record.
type kmsgRecord struct {
	seq  uint64
	usec uint64 // since boot (the printk clock)
	msg  string
}

// parseKmsgRecord parses "prio,seq,usec,flags[,...];message\n[ KEY=v\n...]"
// as documented in Documentation/ABI/testing/dev-kmsg. Continuation lines
// (dictionary) are dropped; escaped bytes (\xNN) are left as they are.
func parseKmsgRecord(b []byte) (kmsgRecord, error) {
	head, body, ok := bytes.Cut(b, []byte{';'})
	if !ok {
		return kmsgRecord{}, fmt.Errorf("%w: kmsg record without ';'", ErrParse)
	}
	f := bytes.SplitN(head, []byte{','}, 5)
	if len(f) < 4 {
		return kmsgRecord{}, fmt.Errorf("%w: kmsg header %q: want prio,seq,usec,flags", ErrParse, procClip(string(head)))
	}
	seq, err1 := strconv.ParseUint(string(f[1]), 10, 64)
	usec, err2 := strconv.ParseUint(string(f[2]), 10, 64)
	if err1 != nil || err2 != nil {
		return kmsgRecord{}, fmt.Errorf("%w: kmsg header %q: bad sequence or time", ErrParse, procClip(string(head)))
	}
	if i := bytes.IndexByte(body, '\n'); i >= 0 {
		body = body[:i]
	}
	return kmsgRecord{seq: seq, usec: usec, msg: string(body)}, nil
}

// readKmsgFD reads the records of an open /dev/kmsg descriptor from its
// position until there are none (EAGAIN). Each read(2) returns one record.
func readKmsgFD(fd int, path string, after uint64) ([]KernelEvent, uint64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return nil, 0, fmt.Errorf("clock_gettime: %w", err)
	}
	now := time.Now()
	mono := time.Duration(ts.Nano())
	buf := make([]byte, 8192) // a record is at most ~1 KiB plus dictionary
	var out []KernelEvent
	var last uint64
	for {
		n, err := unix.Read(fd, buf)
		switch {
		case errors.Is(err, unix.EAGAIN):
			return out, last, nil
		case errors.Is(err, unix.EPIPE):
			// The ring buffer overwrote records we had not read yet:
			// the next read continues with the oldest available one.
			continue
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return out, last, fmt.Errorf("read %s: %w", path, err)
		case n == 0:
			return out, last, nil
		}
		rec, err := parseKmsgRecord(buf[:n])
		if err != nil {
			continue
		}
		last = max(last, rec.seq)
		if after != 0 && rec.seq <= after {
			continue
		}
		ev, ok := ClassifyKernelLine(rec.msg)
		if !ok {
			continue
		}
		ev.Seq = rec.seq
		ev.Time = now.Add(time.Duration(rec.usec)*time.Microsecond - mono).Round(time.Millisecond)
		out = append(out, ev)
	}
}

// KmsgReader keeps /dev/kmsg open between samples, so that each sample
// reads only the records logged since the previous one: /dev/kmsg returns
// one record per read(2), and re-reading a ring of thousands of records
// at every agent tick cost ~2 ms of CPU a tick here. Give each watched
// namespace its own reader (a record read by one is not seen again by it).
// Safe for concurrent use; the zero value is not usable.
type KmsgReader struct {
	mu   sync.Mutex
	path string
	fd   int // -1 until opened
	last uint64
}

// NewKmsgReader returns a reader of path ("" = /dev/kmsg), opened at its
// first Read.
func NewKmsgReader(path string) *KmsgReader {
	if path == "" {
		path = "/dev/kmsg"
	}
	return &KmsgReader{path: path, fd: -1}
}

// Read returns the matching records logged since the previous Read (the
// whole ring at the first), with sequence numbers above after, and the last
// sequence number seen so far. An error to open or read closes the
// descriptor: the next Read opens it again and reads the ring from the
// start (sequence numbers still filter what was reported).
func (r *KmsgReader) Read(after uint64) ([]KernelEvent, uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fd < 0 {
		fd, err := unix.Open(r.path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, r.last, procNoData(fmt.Errorf("open %s: %w", r.path, err))
		}
		r.fd = fd
	}
	evs, last, err := readKmsgFD(r.fd, r.path, after)
	r.last = max(r.last, last)
	if err != nil {
		unix.Close(r.fd)
		r.fd = -1
	}
	return evs, r.last, err
}

// Close releases the descriptor.
func (r *KmsgReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fd < 0 {
		return nil
	}
	err := unix.Close(r.fd)
	r.fd = -1
	return err
}
