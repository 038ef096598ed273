package sample

import (
	"go.uber.org/zap"

	"github.com/sockwarden/sockwarden/config"
)

// Options says what a live sample reads and how much it keeps.
type Options struct {
	// Netns is the network namespace to sample: a path such as
	// /run/netns/NAME or /proc/PID/ns/net; "" is the caller's own.
	Netns string
	// TopDestinations and TopProcesses bound the destination and
	// per-process tables kept in a Sample (<= 0: keep 20).
	TopDestinations, TopProcesses int
	// Owners maps sockets to their processes through /proc/PID/fd (as
	// `ss -p` does). Off, Listener.Owners and Sample.Processes stay empty
	// and the sample is cheaper.
	Owners bool
	// OwnerScan says how owners are found (OwnerScanAuto when "").
	OwnerScan OwnerScanMode
	// KmsgAfter makes a sample keep only kernel log records with a
	// sequence number above it (0: every matching record still in the
	// ring buffer). Series sets it from one sample to the next.
	KmsgAfter uint64
	// Kmsg, when set, reads the kernel log through a descriptor kept open
	// across samples (the agent: one reader per watched namespace), so
	// that a sample reads only the records logged since the previous one.
	// nil: each sample opens /dev/kmsg and reads the whole ring.
	Kmsg *KmsgReader
	// Log receives debug lines about missing sources (nil: none).
	Log *zap.Logger

	// BundleMaxBytes bounds what a bundle may hold, once decompressed:
	// every byte of the archive (or of the directory's capture files)
	// counted, once per pass (<= 0: DefaultBundleMaxBytes). See bundle.go.
	BundleMaxBytes int64
	// BundleMaxRatio bounds how many times larger than its compressed
	// size a .tar.gz may grow past its first 64 MiB (<= 0:
	// DefaultBundleMaxRatio).
	BundleMaxRatio int64

	// procRoot and kmsgPath point tests at fixtures ("" = /proc and
	// /dev/kmsg).
	procRoot string
	kmsgPath string
	// bundleMaxFile lowers the per-file bound of a bundle (tests; 0 =
	// maxBundleFile).
	bundleMaxFile int64
	// bundleMaxListeners lowers maxBundleListeners (tests); see maxListeners.
	bundleMaxListeners int
	// sockDiagOnly makes a census dump every socket through sock_diag,
	// tcpIterAlways through the BPF tcp iterator whatever the namespace
	// holds (tests; see useTCPIter).
	sockDiagOnly, tcpIterAlways bool
}

// OwnerScanMode says how a census finds socket owners: config's
// sample.owner_scan, whose validation accepts exactly these three values.
type OwnerScanMode string

const (
	// OwnerScanAuto uses the BPF iterator (internal/bpfiter) when the
	// kernel and capabilities allow and the namespace holds enough of the
	// host's open files (procCheaper), /proc/PID/fd otherwise.
	OwnerScanAuto OwnerScanMode = "auto"
	// OwnerScanBPF uses the iterator or fails the sample.
	OwnerScanBPF OwnerScanMode = "bpf"
	// OwnerScanProc reads /proc/PID/fd only.
	OwnerScanProc OwnerScanMode = "proc"
)

// OptionsFrom builds Options from the sample section of the configuration.
func OptionsFrom(c config.Sample, netns string, log *zap.Logger) Options {
	return Options{
		Netns:           netns,
		TopDestinations: c.TopDestinations,
		TopProcesses:    c.TopProcesses,
		Owners:          c.Owners,
		OwnerScan:       OwnerScanMode(c.OwnerScan),
		Log:             log,
	}
}

func (o Options) logger() *zap.Logger {
	if o.Log == nil {
		return zap.NewNop()
	}
	return o.Log.Named("sample")
}

func (o Options) topDest() int {
	if o.TopDestinations <= 0 {
		return 20
	}
	return o.TopDestinations
}

func (o Options) topProc() int {
	if o.TopProcesses <= 0 {
		return 20
	}
	return o.TopProcesses
}

// bpfAllowed says whether the owner scan may use the BPF iterator: not
// with owner_scan proc, nor against a fixture /proc (tests).
func (o Options) bpfAllowed() bool { return o.OwnerScan != OwnerScanProc && o.procRoot == "" }

func (o Options) proc() string {
	if o.procRoot == "" {
		return "/proc"
	}
	return o.procRoot
}

// SysctlKeys lists the sysctls a sample records, in dotted form.
var SysctlKeys = []string{
	"net.core.somaxconn",
	"net.ipv4.tcp_max_syn_backlog",
	"net.ipv4.ip_local_port_range",
	"net.ipv4.ip_local_reserved_ports",
	"net.ipv4.ip_unprivileged_port_start",
	"net.ipv4.tcp_tw_reuse",
	"net.ipv4.tcp_syncookies",
	"net.ipv4.tcp_abort_on_overflow",
	"net.ipv4.tcp_fin_timeout",
	"net.ipv4.tcp_max_orphans",
	"net.ipv4.tcp_mem",
	"fs.file-max",
	"fs.file-nr",
}

// newCensus returns an empty census keeping the top destinations and
// processes these options ask for.
func (o Options) newCensus() *Census { return NewCensus(o.topDest(), o.topProc()) }

// maxFile bounds one file of a bundle.
func (o Options) maxFile() int64 {
	if o.bundleMaxFile > 0 {
		return o.bundleMaxFile
	}
	return maxBundleFile
}

// maxListeners bounds the LISTEN lines of one captured socket table, for
// bundles and pastes alike.
func (o Options) maxListeners() int {
	if o.bundleMaxListeners > 0 {
		return o.bundleMaxListeners
	}
	return maxBundleListeners
}
