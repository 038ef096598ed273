package sample

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
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
	// KernelFileMax: "VFS: file-max limit N reached", the system's open
	// files at fs.file-max (an unprivileged open, socket or accept failed
	// with ENFILE).
	KernelFileMax = "file-max"
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

// kernelLineKinds are the substrings that make a kernel log line one
// that matters, in the order ClassifyKernelLine tries them, and the kind
// each gives. kernelLineWanted checks a record for them before it is
// copied out of the read buffer: nearly every record of a ring is another
// subsystem's, and a one-shot census reads the whole ring.
var kernelLineKinds = []struct{ substr, kind string }{
	{"SYN flooding on port", KernelSynFlood},
	{"out of memory -- consider tuning tcp_mem", KernelTCPOOM},
	{"too many orphaned sockets", KernelTooManyOrphans},
	{"too many of orphaned sockets", KernelTooManyOrphans},
	{"nf_conntrack: table full, dropping packet", KernelConntrackFull},
	{"time wait bucket table overflow", KernelTWBucketOverflow},
	{"ip_local_port_range: prefer different parity", KernelPortRangeParity},
	{"VFS: file-max limit", KernelFileMax},
}

// kernelLineSubstrs are kernelLineKinds' substrings as bytes: converted
// at each call, those over 32 bytes were copied to the heap, for every
// record of the ring.
var kernelLineSubstrs = func() [][]byte {
	b := make([][]byte, len(kernelLineKinds))
	for i, k := range kernelLineKinds {
		b[i] = []byte(k.substr)
	}
	return b
}()

// kernelLineWanted says whether msg may be a line ClassifyKernelLine
// recognises: whether it holds one of kernelLineKinds. Stripping a dmesg
// stamp or a line end leaves a part of msg, so a line without any of them
// cannot classify.
func kernelLineWanted(msg []byte) bool {
	for _, k := range kernelLineSubstrs {
		if bytes.Contains(msg, k) {
			return true
		}
	}
	return false
}

// kernelLineKind returns the index in kernelLineKinds of the first
// substring msg holds, -1 for none: kernelLineWanted for a string.
func kernelLineKind(msg string) int {
	return slices.IndexFunc(kernelLineKinds, func(k struct{ substr, kind string }) bool {
		return strings.Contains(msg, k.substr)
	})
}

// ClassifyKernelLine recognises the kernel log lines that matter to TCP
// diagnosis: SYN flooding (with the listener's address and port and whether
// cookies were sent or the request dropped), TCP out of memory, too many
// orphaned sockets, a full conntrack table, and the port-range parity
// warning. msg is the message part of a /dev/kmsg record or of a dmesg line;
// a leading dmesg "[ seconds]" stamp is skipped. Seq and Time are left for
// the caller.
func ClassifyKernelLine(msg string) (KernelEvent, bool) {
	if strings.HasPrefix(msg, "[") { // the stamp's expression starts with ^\[
		msg = dmesgStampRE().ReplaceAllString(msg, "")
	}
	msg = strings.TrimRight(msg, "\r\n")
	ev := KernelEvent{Line: msg}
	i := kernelLineKind(msg)
	if i < 0 {
		return KernelEvent{}, false
	}
	ev.Kind = kernelLineKinds[i].kind
	if ev.Kind == KernelSynFlood {
		m := synFloodRE().FindStringSubmatch(msg)
		if m == nil {
			return KernelEvent{}, false
		}
		ev.Addr, ev.Port = splitFloodPort(m[1])
		if strings.EqualFold(m[2], "Sending cookies") {
			ev.Action = "cookies"
		} else {
			ev.Action = "drop"
		}
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
	seq, usec, msg, err := parseKmsgHead(b)
	if err != nil {
		return kmsgRecord{}, err
	}
	return kmsgRecord{seq: seq, usec: usec, msg: string(msg)}, nil
}

// parseKmsgHead is parseKmsgRecord with the message left in b: the reader
// copies out only the messages that may classify.
func parseKmsgHead(b []byte) (seq, usec uint64, msg []byte, err error) {
	head, body, ok := bytes.Cut(b, []byte{';'})
	if !ok {
		return 0, 0, nil, fmt.Errorf("%w: kmsg record without ';'", ErrParse)
	}
	// prio,seq,usec,flags: three commas at least.
	_, rest, ok1 := bytes.Cut(head, []byte{','})
	seqB, rest, ok2 := bytes.Cut(rest, []byte{','})
	usecB, _, ok3 := bytes.Cut(rest, []byte{','})
	if !ok1 || !ok2 || !ok3 {
		return 0, 0, nil, fmt.Errorf("%w: kmsg header %q: want prio,seq,usec,flags", ErrParse, procClip(string(head)))
	}
	seq, err1 := strconv.ParseUint(string(seqB), 10, 64)
	usec, err2 := strconv.ParseUint(string(usecB), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, nil, fmt.Errorf("%w: kmsg header %q: bad sequence or time", ErrParse, procClip(string(head)))
	}
	if i := bytes.IndexByte(body, '\n'); i >= 0 {
		body = body[:i]
	}
	return seq, usec, body, nil
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
		seq, usec, msg, err := parseKmsgHead(buf[:n])
		if err != nil {
			continue
		}
		last = max(last, seq)
		if after != 0 && seq <= after || !kernelLineWanted(msg) {
			continue
		}
		ev, ok := ClassifyKernelLine(string(msg))
		if !ok {
			continue
		}
		ev.Seq = seq
		ev.Time = now.Add(time.Duration(usec)*time.Microsecond - mono).Round(time.Millisecond)
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
