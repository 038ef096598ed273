package sample

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/sockwarden/sockwarden/internal/netns"
)

// ErrCollect wraps failures to write a bundle.
var ErrCollect = errors.New("collect")

// Collect writes a bundle of snapshots of the live namespace opts.Netns to
// out (a .tar.gz), gap apart (counted from the start of each snapshot), in
// the layout FromBundle reads: directories "1", "2", ... holding the files
// README.md lists under "Captured bundles". The archive is written to a
// temporary file next to out and renamed into place, so out is either the
// whole bundle or untouched.
//
// Why run the real tools: a bundle exists to be read by people as much as
// by FromBundle, and the one thing both trust is what `ss`, `sysctl` and
// `dmesg` print. Running them (inside the namespace: the child processes
// are started from a thread that joined it, so /proc/net, /proc/sys/net and
// sock_diag are the namespace's) makes a collected bundle byte-for-byte the
// bundle a person makes by hand, exercises the text parsers on every
// collect, and leaves owner mapping (-p) to the reference implementation.
// The /proc counter files are copied, not formatted, for the same reason.
// Where a tool is absent (a minimal container image) or refused (dmesg
// under kernel.dmesg_restrict), the same format is written from the live
// sources instead: the socket table from Dump in `ss -tane` layout (plus
// owners), the sysctls from /proc/sys, the kernel log from /dev/kmsg read
// without blocking. collect.txt in each snapshot says which way every file
// was made. Each tool runs under a timeout, so a wedged tool cannot hang
// the agent.
func Collect(ctx context.Context, opts Options, out string, snapshots int, gap time.Duration) error {
	log := opts.logger().Named("collect")
	if snapshots < 1 || snapshots > 100 {
		return fmt.Errorf("%w: snapshots must be between 1 and 100, got %d", ErrCollect, snapshots)
	}
	if gap < 0 {
		return fmt.Errorf("%w: gap must not be negative, got %s", ErrCollect, gap)
	}
	if out == "" {
		return fmt.Errorf("%w: no output file", ErrCollect)
	}
	// Fail before the snapshots, not after, when out cannot be written.
	probe, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return fmt.Errorf("%w: cannot write %s: %w", ErrCollect, out, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	work, err := os.MkdirTemp("", "sockwarden-collect-")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCollect, err)
	}
	defer os.RemoveAll(work)

	for i := 1; i <= snapshots; i++ {
		start := time.Now()
		dir := filepath.Join(work, strconv.Itoa(i))
		taken, err := collectSnapshot(ctx, opts, dir, log)
		if err != nil {
			return fmt.Errorf("%w: snapshot %d: %w", ErrCollect, i, err)
		}
		log.Debug("snapshot written", zap.Int("snapshot", i), zap.Duration("took", time.Since(start)))
		if i < snapshots {
			// Paced from the time the snapshot recorded (date.txt), not
			// from when it was started: the next one records its own
			// time after this wait, so the times in the bundle are at
			// least gap apart even when entering the namespace is slow.
			t := time.NewTimer(time.Until(taken.Add(gap)))
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("%w: %w", ErrCollect, ctx.Err())
			case <-t.C:
			}
		}
	}
	if err := writeTarGz(work, out); err != nil {
		return fmt.Errorf("%w: %w", ErrCollect, err)
	}
	log.Debug("bundle written", zap.String("path", out), zap.Int("snapshots", snapshots), zap.String("netns", opts.Netns))
	return nil
}

// toolTimeout bounds one tool run.
const toolTimeout = 2 * time.Minute

// collectLog records how each file of a snapshot was made (collect.txt).
type collectLog struct {
	b bytes.Buffer
}

func (c *collectLog) add(file, how string) { fmt.Fprintf(&c.b, "%-14s %s\n", file, how) }

// collectSnapshot writes one snapshot into dir and returns the time it
// recorded in date.txt.
func collectSnapshot(ctx context.Context, opts Options, dir string, log *zap.Logger) (time.Time, error) {
	var now time.Time
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return now, err
	}
	var cl collectLog
	cl.add("#", "written by sockwarden collect; see README.md, Captured bundles")
	var ssOK bool
	err := netns.Do(opts.Netns, func() (err error) {
		now, ssOK, err = collectInNetns(ctx, opts, dir, &cl)
		return err
	})
	if err != nil {
		return now, err
	}
	if opts.Netns != "" {
		if err := appendGlobalSysctls(opts.proc(), filepath.Join(dir, "sysctl.txt"), &cl); err != nil {
			return now, fmt.Errorf("sysctl.txt: %w", err)
		}
	}
	if !ssOK {
		if err := ssFromDump(ctx, opts, filepath.Join(dir, "ss-tan.txt")); err != nil {
			return now, fmt.Errorf("socket table: %w", err)
		}
		cl.add("ss-tan.txt", "ss -tane(p) layout written by sockwarden from sock_diag (ss unavailable)")
	}
	if opts.Owners {
		if err := collectProcesses(opts, dir, &cl); err != nil {
			return now, fmt.Errorf("processes.txt: %w", err)
		}
	} else {
		cl.add("processes.txt", "not written: owners not read (sample.owners off)")
	}
	collectDmesg(ctx, dir, &cl, log)
	return now, writeSnapFile(dir, "collect.txt", cl.b.String())
}

// writeSnapFile writes one file of a snapshot.
func writeSnapFile(dir, name, content string) error {
	return os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600)
}

// collectInNetns writes the files read inside the sampled namespace: the
// date, uptime, hostname, /proc/net, the ss tables and the sysctls. ssOK
// says whether ss wrote ss-tan.txt.
func collectInNetns(ctx context.Context, opts Options, dir string, cl *collectLog) (now time.Time, ssOK bool, err error) {
	// The date first: it is the time of the socket table that follows.
	// Same format as `date +%s.%N`.
	now = time.Now()
	if err := collectIdentity(opts, dir, cl, now); err != nil {
		return now, false, err
	}
	// /proc/net first: sockstat's "sockets: used" still counts the
	// netlink sockets ss has just closed for a moment afterwards.
	for _, f := range []string{"netstat", "snmp", "sockstat", "sockstat6"} {
		src := filepath.Join(netns.ProcNet, f)
		if err := copyFile(src, filepath.Join(dir, f+".txt")); err != nil {
			cl.add(f+".txt", "not written: "+err.Error())
			continue
		}
		cl.add(f+".txt", "cat /proc/net/"+f)
	}
	ssTanArgs := []string{"-tanpe"}
	if !opts.Owners {
		ssTanArgs = []string{"-tane"}
	}
	ssOK = runTool(ctx, cl, dir, "ss-tan.txt", "ss", ssTanArgs...)
	runTool(ctx, cl, dir, "ss-tlnp.txt", "ss", "-tlnp")
	runTool(ctx, cl, dir, "ss-s.txt", "ss", "-s")
	if !runTool(ctx, cl, dir, "sysctl.txt", "sysctl", "-a") {
		var b strings.Builder
		for _, k := range SysctlKeys {
			if v, err := readSysctl("/proc", k); err == nil {
				fmt.Fprintf(&b, "%s = %s\n", k, v)
			}
		}
		if err := writeSnapFile(dir, "sysctl.txt", b.String()); err != nil {
			return now, ssOK, err
		}
		cl.add("sysctl.txt", "sysctl KEY... equivalent, read from /proc/sys by sockwarden")
	}
	return now, ssOK, nil
}

// collectIdentity writes date.txt, uptime.txt, hostname.txt and, for
// another namespace, netns.txt.
func collectIdentity(opts Options, dir string, cl *collectLog, now time.Time) error {
	if err := writeSnapFile(dir, "date.txt", fmt.Sprintf("%d.%09d\n", now.Unix(), now.Nanosecond())); err != nil {
		return err
	}
	cl.add("date.txt", "date +%s.%N (written by sockwarden)")
	if err := copyFile("/proc/uptime", filepath.Join(dir, "uptime.txt")); err != nil {
		cl.add("uptime.txt", "not written: "+err.Error())
	} else {
		cl.add("uptime.txt", "cat /proc/uptime")
	}
	if h, err := os.Hostname(); err == nil {
		if err := writeSnapFile(dir, "hostname.txt", h+"\n"); err != nil {
			return err
		}
		cl.add("hostname.txt", "hostname")
	}
	if opts.Netns != "" {
		if err := writeSnapFile(dir, "netns.txt", opts.Netns+"\n"); err != nil {
			return err
		}
		cl.add("netns.txt", "the --netns path")
	}
	return nil
}

// collectDmesg writes dmesg.txt with dmesg, or from /dev/kmsg when dmesg
// is missing. The kernel log is host-wide: no namespace needed. A log that
// cannot be read is noted, not an error.
func collectDmesg(ctx context.Context, dir string, cl *collectLog, log *zap.Logger) {
	if runTool(ctx, cl, dir, "dmesg.txt", "dmesg") {
		return
	}
	n, err := dmesgFromKmsg(filepath.Join(dir, "dmesg.txt"))
	if err != nil {
		os.Remove(filepath.Join(dir, "dmesg.txt"))
		cl.add("dmesg.txt", "not written: /dev/kmsg: "+err.Error())
		log.Warn("kernel log not collected", zap.Error(err))
		return
	}
	cl.add("dmesg.txt", fmt.Sprintf("dmesg layout written by sockwarden from /dev/kmsg (%d records)", n))
}

// appendGlobalSysctls adds to a namespace's sysctl.txt the global sysctls
// its own `sysctl -a` lacks (addGlobalSysctls, as for a live sample), so
// that the bundle reads as the live sample does.
func appendGlobalSysctls(procRoot, path string, cl *collectLog) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	have, _, err := ParseSysctlText(f, "sysctl.txt")
	if err != nil {
		// The bundle's reader reports this file; add nothing to it.
		cl.add("sysctl.txt", "global sysctls not added: "+err.Error())
		return nil
	}
	keys := addGlobalSysctls(have, procRoot)
	if len(keys) == 0 {
		return nil
	}
	var add strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&add, "%s = %s\n", k, have[k])
	}
	if _, err := f.WriteString(add.String()); err != nil {
		return err
	}
	cl.add("sysctl.txt", "+ "+strings.Join(keys, ", ")+": global, read in the initial namespace (sysctl KEY there)")
	return f.Close()
}

// collectProcesses writes processes.txt, the lines the /proc loop of
// README.md prints, for the processes of the namespace that own sockets
// and those the socket tables just written name as owners. It runs right
// after ss, so the counts are of the same moment.
func collectProcesses(opts Options, dir string, cl *collectLog) error {
	var named []int
	for _, f := range []string{"ss-tan.txt", "ss-tlnp.txt"} {
		r, err := os.Open(filepath.Join(dir, f))
		if err != nil {
			continue
		}
		ParseSS(r, f, func(e SSEntry) error {
			for _, o := range e.Owners {
				named = append(named, o.PID)
			}
			return nil
		})
		r.Close()
	}
	nsID, err := netns.ID(opts.Netns)
	if err != nil {
		cl.add("processes.txt", "not written: "+err.Error())
		return nil
	}
	start := time.Now()
	owners, miss, err := processOwners(opts.proc(), nsID, named)
	if err != nil {
		cl.add("processes.txt", "not written: "+err.Error())
		return nil
	}
	var b bytes.Buffer
	b.WriteString("PID FDS NOFILE UNIT COMM\n")
	for _, o := range owners {
		formatProcessLine(&b, o)
	}
	if err := os.WriteFile(filepath.Join(dir, "processes.txt"), b.Bytes(), 0o600); err != nil {
		return err
	}
	how := fmt.Sprintf("procs loop of README.md equivalent, read from /proc by sockwarden: %d process(es) owning sockets, of the namespace or named by ss (%.2fs)", len(owners), time.Since(start).Seconds())
	if miss != nil {
		how += "; " + miss.Reason
	}
	cl.add("processes.txt", how)
	return nil
}

// runTool runs name args... with its stdout going to dir/file, and says
// whether it succeeded. On failure the file is removed (FromBundle then
// reports it absent) and collect.txt says why.
func runTool(ctx context.Context, cl *collectLog, dir, file, name string, args ...string) bool {
	how := strings.Join(append([]string{name}, args...), " ")
	path, err := lookTool(name)
	if err != nil {
		cl.add(file, how+": not run: "+err.Error())
		return false
	}
	f, err := os.OpenFile(filepath.Join(dir, file), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		cl.add(file, how+": "+err.Error())
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, toolTimeout)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdout = f
	cmd.Stderr = &limitedBuffer{b: &stderr, max: 4096}
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	start := time.Now()
	err = cmd.Run()
	cerr := f.Close()
	if err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		msg := strings.TrimSpace(stderr.String())
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		cl.add(file, fmt.Sprintf("%s: failed: %v %s", how, err, msg))
		return false
	}
	cl.add(file, fmt.Sprintf("%s (%.2fs)", how, time.Since(start).Seconds()))
	return true
}

// lookTool finds a tool on PATH or in the sbin directories a service's
// PATH may lack.
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// ssFromDump writes the socket table in `ss -tane` layout (with owners in
// ss -p's users:((...)) form when opts.Owners) from a sock_diag dump of
// the namespace. ss prints fd=N in users:((...)); the dump does not know
// which descriptor, so it is left out, which also marks the file as made
// by sockwarden.
func ssFromDump(ctx context.Context, opts Options, path string) error {
	var owners *ownerIndex
	if opts.Owners {
		owners, _, _ = scanOwners(opts.proc())
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	w := &errWriter{w: bufioWriter(f)}
	fmt.Fprintf(w, "%-10s %-6s %-6s %25s %25s Process\n", "State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port")
	err = Dump(ctx, opts.Netns, nil, func(sk Socket) error {
		fmt.Fprintf(w, "%-10s %-6d %-6d %25s %25s", sk.State, sk.RecvQ, sk.SendQ, FormatLocal(sk.Local, sk.V6Only), formatPeer(sk))
		if ows := owners.lookup(sk.Inode); len(ows) > 0 {
			fmt.Fprint(w, " users:(")
			for i, o := range ows {
				if i > 0 {
					fmt.Fprint(w, ",")
				}
				fmt.Fprintf(w, "(%q,pid=%d)", o.Comm, o.PID)
			}
			fmt.Fprint(w, ")")
		}
		fmt.Fprintf(w, " uid:%d ino:%d\n", sk.UID, sk.Inode)
		return w.err
	})
	if ferr := w.flush(); err == nil {
		err = ferr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// formatPeer prints the peer column as ss does: "*:*" style for an
// unconnected socket of the family.
func formatPeer(sk Socket) string {
	a := sk.Remote.Addr()
	if sk.Remote.Port() == 0 && (!a.IsValid() || a.IsUnspecified()) {
		switch {
		case sk.Family == "ipv4":
			return "0.0.0.0:*"
		case sk.V6Only:
			return "[::]:*"
		default:
			return "*:*"
		}
	}
	return FormatLocal(sk.Remote, true)
}

// dmesgFromKmsg writes every record of the kernel ring buffer in dmesg's
// "[seconds.micros] message" layout, reading /dev/kmsg without blocking.
func dmesgFromKmsg(path string) (int, error) {
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	w := &errWriter{w: bufioWriter(f)}
	buf := make([]byte, 8192)
	n := 0
	// A bound on records, so that a kernel logging faster than we read
	// cannot keep us here.
	for n < 1<<20 {
		m, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EAGAIN) || (err == nil && m == 0) {
			break
		}
		if errors.Is(err, unix.EPIPE) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			f.Close()
			return n, err
		}
		rec, err := parseKmsgRecord(buf[:m])
		if err != nil {
			continue
		}
		fmt.Fprintf(w, "[%5d.%06d] %s\n", rec.usec/1e6, rec.usec%1e6, rec.msg)
		n++
	}
	err = w.flush()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// writeTarGz archives the snapshot directories under work into out,
// atomically: a temporary file in out's directory, synced, then renamed.
func writeTarGz(work, out string) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	zw := gzip.NewWriter(tmp)
	tw := tar.NewWriter(zw)
	err = filepath.WalkDir(work, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == work {
			return err
		}
		rel, err := filepath.Rel(work, p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			h.Name += "/"
		}
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}

// errWriter remembers the first write error so that a formatting loop can
// check once.
type errWriter struct {
	w   *bufio.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (e *errWriter) flush() error {
	if e.err != nil {
		return e.err
	}
	return e.w.Flush()
}

func bufioWriter(f *os.File) *bufio.Writer { return bufio.NewWriterSize(f, 64<<10) }
