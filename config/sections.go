package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Sample configures the census.
type Sample struct {
	// TopDestinations bounds the destination groups kept per sample.
	TopDestinations int `mapstructure:"top_destinations"`
	// TopProcesses bounds the per-process table kept per sample.
	TopProcesses int `mapstructure:"top_processes"`
	// Owners maps sockets to processes through /proc/PID/fd (as ss -p).
	Owners bool `mapstructure:"owners"`
	// OwnerScan says how owners are found: "auto" (a BPF task_file
	// iterator when the kernel and capabilities allow, /proc otherwise or
	// when the sampled namespace's sockets are under a tenth of the
	// host's open files), "bpf" (the iterator or an error) or "proc"
	// (/proc/PID/fd only).
	OwnerScan string `mapstructure:"owner_scan"`
	// WatchInterval is the poll period of the listener-only watch taken
	// between two samples (0 disables it).
	WatchInterval time.Duration `mapstructure:"watch_interval"`
}

func defaultSample() Sample {
	return Sample{TopDestinations: 20, TopProcesses: 20, Owners: true, OwnerScan: "auto", WatchInterval: 20 * time.Millisecond}
}

func (s Sample) validate() error {
	var errs []error
	errs = append(errs, positive("sample.top_destinations", s.TopDestinations), positive("sample.top_processes", s.TopProcesses))
	switch s.OwnerScan {
	case "auto", "bpf", "proc":
	default:
		errs = append(errs, fmt.Errorf("sample.owner_scan: %q is not one of auto, bpf, proc", s.OwnerScan))
	}
	if s.WatchInterval < 0 {
		errs = append(errs, fmt.Errorf("sample.watch_interval: must not be negative, got %s", s.WatchInterval))
	}
	return errors.Join(errs...)
}

// Diagnose holds the thresholds of the rules (see docs/rules.md).
type Diagnose struct {
	// Samples and Interval: how many samples diagnose takes, how far apart.
	Samples  int           `mapstructure:"samples"`
	Interval time.Duration `mapstructure:"interval"`
	// MinArrivalsPerSec is the load floor: below it (passive + active
	// opens per second) a host is idle and drop counters are not acted on.
	MinArrivalsPerSec float64 `mapstructure:"min_arrivals_per_sec"`
	// MinDropsPerSec: drop rates at or below this are noise.
	MinDropsPerSec float64 `mapstructure:"min_drops_per_sec"`
	// CloseWaitMin: a process with at least this many CLOSE-WAIT sockets
	// is a pile.
	CloseWaitMin int `mapstructure:"close_wait_min"`
	// FinWait2Min, TimeWaitMin, SynRecvMin: pile sizes for those states.
	FinWait2Min int `mapstructure:"fin_wait2_min"`
	TimeWaitMin int `mapstructure:"time_wait_min"`
	SynRecvMin  int `mapstructure:"syn_recv_min"`
	// SynSentMin: at least this many SYN-SENT sockets to one destination
	// are a pile (the peer does not answer); a responsive peer leaves
	// connects in SYN-SENT for one round trip only.
	SynSentMin int `mapstructure:"syn_sent_min"`
	// PortUseRatio: a destination using this share of the usable
	// ephemeral ports is near exhaustion.
	PortUseRatio float64 `mapstructure:"port_use_ratio"`
	// FDUseRatio: a process or the system at this share of its
	// descriptor limit is near exhaustion.
	FDUseRatio float64 `mapstructure:"fd_use_ratio"`
	// SomaxconnCap caps proposed somaxconn values.
	SomaxconnCap int `mapstructure:"somaxconn_cap"`
	// SynBacklogCap caps proposed tcp_max_syn_backlog values.
	SynBacklogCap int `mapstructure:"syn_backlog_cap"`
	// SaturatedRatio: a listener whose queue never drained during the
	// watch and sat at its limit in at least this share of the polls is
	// a saturated (slow) acceptor rather than a burst. Not draining is
	// the real test; the share keeps a queue that only touched its limit
	// once from counting (the first polls of a watch may precede the
	// queue filling up).
	SaturatedRatio float64 `mapstructure:"saturated_ratio"`
	// OrphanUseRatio: orphans at this share of net.ipv4.tcp_max_orphans
	// are orphan pressure.
	OrphanUseRatio float64 `mapstructure:"orphan_use_ratio"`
	// PortRangeFloor: a widened ip_local_port_range never starts below
	// this port (nor below net.ipv4.ip_unprivileged_port_start): ports
	// under it are where services listen.
	PortRangeFloor int `mapstructure:"port_range_floor"`
	// KeepSyncookiesOff: the operator keeps net.ipv4.tcp_syncookies=0 on
	// purpose; a SYN-queue overflow then gets a tcp_max_syn_backlog
	// proposal instead of tcp_syncookies=1.
	KeepSyncookiesOff bool `mapstructure:"keep_syncookies_off"`
}

func defaultDiagnose() Diagnose {
	return Diagnose{
		Samples: 2, Interval: 5 * time.Second,
		MinArrivalsPerSec: 5, MinDropsPerSec: 0,
		CloseWaitMin: 100, FinWait2Min: 500, TimeWaitMin: 5000, SynRecvMin: 100, SynSentMin: 20,
		PortUseRatio: 0.8, FDUseRatio: 0.9,
		SomaxconnCap: 65535, SynBacklogCap: 65536,
		SaturatedRatio: 0.5, OrphanUseRatio: 0.8, PortRangeFloor: 10000,
	}
}

func ratio(key string, r float64) error {
	if r <= 0 || r > 1 {
		return fmt.Errorf("%s: must be in (0, 1], got %g", key, r)
	}
	return nil
}

func (d Diagnose) validate() error {
	var errs []error
	if d.Samples < 1 {
		errs = append(errs, fmt.Errorf("diagnose.samples: must be at least 1, got %d", d.Samples))
	}
	errs = append(errs, positiveDur("diagnose.interval", d.Interval),
		ratio("diagnose.port_use_ratio", d.PortUseRatio), ratio("diagnose.fd_use_ratio", d.FDUseRatio),
		positive("diagnose.close_wait_min", d.CloseWaitMin), positive("diagnose.fin_wait2_min", d.FinWait2Min),
		positive("diagnose.time_wait_min", d.TimeWaitMin), positive("diagnose.syn_recv_min", d.SynRecvMin),
		positive("diagnose.syn_sent_min", d.SynSentMin))
	if d.MinArrivalsPerSec < 0 {
		errs = append(errs, fmt.Errorf("diagnose.min_arrivals_per_sec: must not be negative"))
	}
	if d.MinDropsPerSec < 0 {
		errs = append(errs, fmt.Errorf("diagnose.min_drops_per_sec: must not be negative"))
	}
	if d.SomaxconnCap < 128 || d.SomaxconnCap > 1<<31-1 {
		errs = append(errs, fmt.Errorf("diagnose.somaxconn_cap: must be between 128 and 2147483647, got %d", d.SomaxconnCap))
	}
	errs = append(errs, ratio("diagnose.saturated_ratio", d.SaturatedRatio), ratio("diagnose.orphan_use_ratio", d.OrphanUseRatio))
	if d.PortRangeFloor < 1 || d.PortRangeFloor > 65535 {
		errs = append(errs, fmt.Errorf("diagnose.port_range_floor: must be between 1 and 65535, got %d", d.PortRangeFloor))
	}
	if d.SynBacklogCap < 128 {
		errs = append(errs, fmt.Errorf("diagnose.syn_backlog_cap: must be at least 128, got %d", d.SynBacklogCap))
	}
	return errors.Join(errs...)
}

// Remediate configures the guarded apply.
type Remediate struct {
	// Allowlist: the only sysctls that may ever be written.
	Allowlist []string `mapstructure:"allowlist"`
	// ApprovalTTL is the default lifetime of an approval.
	ApprovalTTL time.Duration `mapstructure:"approval_ttl"`
	// MaxApprovalTTL caps an approval's lifetime (approve --ttl): an
	// approval that lasts for ever is a standing approval by another name.
	MaxApprovalTTL time.Duration `mapstructure:"max_approval_ttl"`
	// OnRestart: what to do with a change found applied or verifying at
	// start-up: "rollback" (default) or "resume".
	OnRestart OnRestart `mapstructure:"on_restart"`
	// RestartUnit allows restarting the listener's systemd unit so that
	// it listens again after a somaxconn change (only when the approval
	// says so too).
	RestartUnit bool `mapstructure:"restart_unit"`
	// Persist writes verified changes to /etc/sysctl.d/ as well.
	Persist    bool   `mapstructure:"persist"`
	PersistDir string `mapstructure:"persist_dir"`
	// Standing holds standing approval rules, "KEY<=MAX" ("net.core.somaxconn<=16384"),
	// empty (the default) for none.
	Standing []string `mapstructure:"standing"`
}

func defaultRemediate() Remediate {
	return Remediate{
		Allowlist: []string{
			"net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog", "net.ipv4.ip_local_port_range",
			"net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_syncookies", "net.ipv4.tcp_tw_reuse",
		},
		ApprovalTTL:    time.Hour,
		MaxApprovalTTL: 7 * 24 * time.Hour,
		OnRestart:      "rollback",
		PersistDir:     "/etc/sysctl.d",
		Standing:       []string{},
	}
}

func (r Remediate) validate() error {
	var errs []error
	errs = append(errs, positiveDur("remediate.approval_ttl", r.ApprovalTTL), positiveDur("remediate.max_approval_ttl", r.MaxApprovalTTL))
	if r.MaxApprovalTTL > 0 && r.ApprovalTTL > r.MaxApprovalTTL {
		errs = append(errs, fmt.Errorf("remediate.approval_ttl: %s is over remediate.max_approval_ttl (%s)", r.ApprovalTTL, r.MaxApprovalTTL))
	}
	if r.OnRestart != OnRestartRollback && r.OnRestart != OnRestartResume {
		errs = append(errs, fmt.Errorf("remediate.on_restart: %q is not rollback or resume", r.OnRestart))
	}
	for _, st := range r.Standing {
		if k, m, ok := strings.Cut(st, "<="); !ok || strings.TrimSpace(k) == "" || strings.TrimSpace(m) == "" {
			errs = append(errs, fmt.Errorf("remediate.standing: %q is not KEY<=MAX (e.g. net.core.somaxconn<=16384)", st))
		}
	}
	if r.Persist && !strings.HasPrefix(r.PersistDir, "/") {
		errs = append(errs, fmt.Errorf("remediate.persist_dir: %q must be an absolute path", r.PersistDir))
	}
	return errors.Join(errs...)
}

// Verify configures the post-change judgement.
type Verify struct {
	Window   time.Duration `mapstructure:"window"`
	Interval time.Duration `mapstructure:"interval"`
	// MaxDropsPerSec: the symptom has stopped when drops fall to this.
	MaxDropsPerSec float64 `mapstructure:"max_drops_per_sec"`
	// Inconclusive: "rollback" (default) or "keep".
	Inconclusive string `mapstructure:"inconclusive"`
	// MinCleanIntervals: how many intervals under load, after the change
	// took effect, must be clean (drops at or below MaxDropsPerSec) for
	// the change to be verified.
	MinCleanIntervals int `mapstructure:"min_clean_intervals"`
}

func defaultVerify() Verify {
	return Verify{Window: 60 * time.Second, Interval: 5 * time.Second, MaxDropsPerSec: 0, Inconclusive: "rollback", MinCleanIntervals: 2}
}

func (v Verify) validate() error {
	var errs []error
	errs = append(errs, positiveDur("verify.window", v.Window), positiveDur("verify.interval", v.Interval))
	if v.Interval > v.Window && v.Window > 0 {
		errs = append(errs, fmt.Errorf("verify.interval: %s is longer than verify.window %s", v.Interval, v.Window))
	}
	if v.Inconclusive != "rollback" && v.Inconclusive != "keep" {
		errs = append(errs, fmt.Errorf("verify.inconclusive: %q is not rollback or keep", v.Inconclusive))
	}
	if v.MaxDropsPerSec < 0 {
		errs = append(errs, fmt.Errorf("verify.max_drops_per_sec: must not be negative"))
	}
	errs = append(errs, positive("verify.min_clean_intervals", v.MinCleanIntervals))
	return errors.Join(errs...)
}

// OnRestart is remediate.on_restart: what resolve does with a change a dead
// process left applied or verifying.
type OnRestart string

// The on_restart policies.
const (
	OnRestartRollback OnRestart = "rollback" // restore the old values (default)
	OnRestartResume   OnRestart = "resume"   // verify again, then keep or roll back
)

// AgentMode is agent.mode: how far the agent goes on its own.
type AgentMode string

// The agent modes.
const (
	AgentObserve AgentMode = "observe" // diagnose and report; record nothing
	AgentPropose AgentMode = "propose" // record proposals; apply approved ones
	AgentAuto    AgentMode = "auto"    // also try each unapproved proposal once (guard 4 still wants a standing rule)
)

// Agent configures `sockwarden agent`.
type Agent struct {
	// Mode: observe, propose (default) or auto.
	Mode AgentMode `mapstructure:"mode"`
	// Tick is the cheap-sample period; FullEvery takes a full census
	// every N ticks even when nothing moves.
	Tick      time.Duration `mapstructure:"tick"`
	FullEvery int           `mapstructure:"full_every"`
	// SockstatRise: a sockstat TIME-WAIT or orphan count this share above
	// the last full census (0.2 = 20 %) triggers a full census.
	SockstatRise float64 `mapstructure:"sockstat_rise"`
	// Netns lists namespace paths to watch besides the agent's own.
	Netns []string `mapstructure:"netns"`
	// ControlSocket is the Unix socket `sockwarden status` talks to.
	ControlSocket string `mapstructure:"control_socket"`
}

// MinTick is the shortest agent.tick accepted: a tick reads sockstat and
// the counters of every watched namespace and may trigger a census (120 to
// 400 ms of CPU on a busy host, docs/PERFORMANCE.md); below a second the
// agent would do little else.
const MinTick = time.Second

func defaultAgent() Agent {
	return Agent{Mode: "propose", Tick: 10 * time.Second, FullEvery: 180, SockstatRise: 0.2, Netns: []string{}, ControlSocket: "/run/sockwarden/control.sock"}
}

func (a Agent) validate() error {
	var errs []error
	switch a.Mode {
	case AgentObserve, AgentPropose, AgentAuto:
	default:
		errs = append(errs, fmt.Errorf("agent.mode: %q is not one of observe, propose, auto", a.Mode))
	}
	if a.Tick < MinTick {
		errs = append(errs, fmt.Errorf("agent.tick: must be at least %s, got %s", MinTick, a.Tick))
	}
	errs = append(errs, positive("agent.full_every", a.FullEvery))
	if a.SockstatRise <= 0 {
		errs = append(errs, fmt.Errorf("agent.sockstat_rise: must be positive, got %g", a.SockstatRise))
	}
	for i, p := range a.Netns {
		if !strings.HasPrefix(p, "/") {
			errs = append(errs, fmt.Errorf("agent.netns[%d]: %q must be an absolute path", i, p))
		}
	}
	if !strings.HasPrefix(a.ControlSocket, "/") {
		errs = append(errs, fmt.Errorf("agent.control_socket: %q must be an absolute path", a.ControlSocket))
	}
	return errors.Join(errs...)
}

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	Enabled bool   `mapstructure:"enabled"`
	Listen  string `mapstructure:"listen"`
	// WebConfigFile is an exporter-toolkit web config (TLS, basic auth),
	// as node_exporter's --web.config.file; empty: plain HTTP.
	WebConfigFile string `mapstructure:"web_config_file"`
}

func defaultMetrics() Metrics {
	return Metrics{Enabled: false, Listen: "127.0.0.1:9872"}
}

func (m Metrics) validate() error {
	if _, _, err := net.SplitHostPort(m.Listen); err != nil {
		return fmt.Errorf("metrics.listen: %q: %w", m.Listen, err)
	}
	if m.WebConfigFile != "" && !strings.HasPrefix(m.WebConfigFile, "/") {
		return fmt.Errorf("metrics.web_config_file: %q must be an absolute path", m.WebConfigFile)
	}
	return nil
}

// Fleet configures the shared approvals store and the rollout limits of a
// fleet (docs/remediate.md, "Fleet"). With no etcd endpoints (the default)
// approvals stay in the local state directory and nothing below is used.
type Fleet struct {
	Etcd Etcd `mapstructure:"etcd"`
	// MaxConcurrent: at most this many hosts of the fleet may have a
	// change in flight (apply, verify, keep or roll back) at once.
	MaxConcurrent int `mapstructure:"max_concurrent"`
	// SlotTTL is the lease of a rollout slot: kept alive while the change
	// is in flight, freed this long after its host dies.
	SlotTTL time.Duration `mapstructure:"slot_ttl"`
	// Labels describe this host to fleet rollouts (role: web, zone: a):
	// `sockwarden fleet approve --selector role=web` picks hosts by them.
	Labels map[string]string `mapstructure:"labels"`
	// StormPercent: a rollout does not start when more than this share
	// of the registered hosts show the same finding at once (a
	// fleet-wide flood is not a tuning job), unless forced.
	StormPercent int `mapstructure:"storm_percent"`
	// MaxChangesPerHour bounds the changes fleet rollouts start across
	// the whole fleet in any hour (0: no bound).
	MaxChangesPerHour int `mapstructure:"max_changes_per_hour"`
}

// Etcd says how to reach the fleet's etcd cluster.
type Etcd struct {
	// Endpoints are client URLs (https://etcd1:2379); empty = no fleet.
	Endpoints []string `mapstructure:"endpoints"`
	// Prefix is put before every key sockwarden reads or writes.
	Prefix string `mapstructure:"prefix"`
	// DialTimeout bounds connecting, RequestTimeout every single call.
	DialTimeout    time.Duration `mapstructure:"dial_timeout"`
	RequestTimeout time.Duration `mapstructure:"request_timeout"`
	TLS            EtcdTLS       `mapstructure:"tls"`
	// Username and PasswordFile: etcd's own authentication. The password
	// is read from the file (mode 0600 or stricter), never from config.
	Username     string `mapstructure:"username"`
	PasswordFile string `mapstructure:"password_file"`
}

// EtcdTLS names PEM files: the CA that signed the servers' certificates,
// and this client's certificate and key (both or neither).
type EtcdTLS struct {
	CA   string `mapstructure:"ca"`
	Cert string `mapstructure:"cert"`
	Key  string `mapstructure:"key"`
}

// Enabled reports whether a fleet store is configured.
func (f Fleet) Enabled() bool { return len(f.Etcd.Endpoints) > 0 }

// MinSlotTTL is the shortest fleet.slot_ttl accepted: etcd raises shorter
// leases to about 1.5 s (its election timeout and a half) anyway.
const MinSlotTTL = 2 * time.Second

func defaultFleet() Fleet {
	return Fleet{
		Etcd: Etcd{
			Endpoints: []string{}, Prefix: "/sockwarden/",
			DialTimeout: 5 * time.Second, RequestTimeout: 5 * time.Second,
		},
		MaxConcurrent:     1,
		SlotTTL:           30 * time.Second,
		Labels:            map[string]string{},
		StormPercent:      50,
		MaxChangesPerHour: 60,
	}
}

// labelRE is compiled on first use: its {0,62} unrolls into 62 nested
// alternatives, ~850 allocations of package init that every command paid
// for labels few configs set (docs/PERFORMANCE.md, "Start-up").
var labelRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`) })

func (f Fleet) validate() error {
	var errs []error
	e := f.Etcd
	https := false
	for i, ep := range e.Endpoints {
		u, err := url.Parse(ep)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("fleet.etcd.endpoints[%d]: %q: %w", i, ep, err))
		case u.Scheme != "http" && u.Scheme != "https", u.Host == "", u.Port() == "":
			errs = append(errs, fmt.Errorf("fleet.etcd.endpoints[%d]: %q is not a client URL such as https://etcd1:2379", i, ep))
		case u.Scheme == "https":
			https = true
		}
	}
	if !strings.HasPrefix(e.Prefix, "/") || !strings.HasSuffix(e.Prefix, "/") || len(e.Prefix) < 2 ||
		strings.Contains(e.Prefix, "//") || strings.Contains(e.Prefix, "..") || strings.ContainsAny(e.Prefix, " \t\n") {
		errs = append(errs, fmt.Errorf("fleet.etcd.prefix: %q must start and end with / (e.g. /sockwarden/), without spaces, // or ..", e.Prefix))
	}
	errs = append(errs, positiveDur("fleet.etcd.dial_timeout", e.DialTimeout), positiveDur("fleet.etcd.request_timeout", e.RequestTimeout))
	for _, p := range []struct{ key, path string }{
		{"fleet.etcd.tls.ca", e.TLS.CA}, {"fleet.etcd.tls.cert", e.TLS.Cert}, {"fleet.etcd.tls.key", e.TLS.Key},
		{"fleet.etcd.password_file", e.PasswordFile},
	} {
		if p.path != "" && !strings.HasPrefix(p.path, "/") {
			errs = append(errs, fmt.Errorf("%s: %q must be an absolute path", p.key, p.path))
		}
	}
	if (e.TLS.Cert == "") != (e.TLS.Key == "") {
		errs = append(errs, fmt.Errorf("fleet.etcd.tls.cert and fleet.etcd.tls.key: give both or neither"))
	}
	if (e.TLS.CA != "" || e.TLS.Cert != "") && len(e.Endpoints) > 0 && !https {
		errs = append(errs, fmt.Errorf("fleet.etcd.tls: TLS files are set but no endpoint in fleet.etcd.endpoints is https://"))
	}
	if (e.Username == "") != (e.PasswordFile == "") {
		errs = append(errs, fmt.Errorf("fleet.etcd.username and fleet.etcd.password_file: give both or neither (the password is read from the file, never from config)"))
	}
	if f.MaxConcurrent < 1 {
		errs = append(errs, fmt.Errorf("fleet.max_concurrent: must be at least 1, got %d", f.MaxConcurrent))
	}
	if f.SlotTTL < MinSlotTTL {
		errs = append(errs, fmt.Errorf("fleet.slot_ttl: must be at least %s, got %s", MinSlotTTL, f.SlotTTL))
	}
	if f.StormPercent < 1 || f.StormPercent > 100 {
		errs = append(errs, fmt.Errorf("fleet.storm_percent: must be 1 to 100, got %d", f.StormPercent))
	}
	if f.MaxChangesPerHour < 0 {
		errs = append(errs, fmt.Errorf("fleet.max_changes_per_hour: must be 0 (no bound) or more, got %d", f.MaxChangesPerHour))
	}
	for k, v := range f.Labels {
		if !labelRE().MatchString(k) || !labelRE().MatchString(v) {
			errs = append(errs, fmt.Errorf("fleet.labels: %q=%q: names and values are letters, digits, '.', '_' or '-' (at most 63)", k, v))
		}
	}
	return errors.Join(errs...)
}
