package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"
	"go.uber.org/zap"
	"golang.org/x/net/netutil"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/remediate"
	"github.com/sockwarden/sockwarden/sample"
)

// NetnsLabel is the netns label of the agent's own namespace.
const NetnsLabel = "host"

// dropCounters are the kernel counters exported as Prometheus counters:
// nstat name -> metric name (docs/agent.md lists their meaning).
var dropCounters = []struct{ nstat, metric, help string }{
	{"TcpExtListenOverflows", "sockwarden_tcp_listen_overflows_total", "Connections dropped because a listener's accept queue was full (TcpExt ListenOverflows)."},
	{"TcpExtListenDrops", "sockwarden_tcp_listen_drops_total", "Every drop on a listener, overflows included (TcpExt ListenDrops)."},
	{"TcpExtTCPReqQFullDrop", "sockwarden_tcp_syn_queue_full_drops_total", "SYNs dropped because the SYN queue was full and cookies were off (TcpExt TCPReqQFullDrop)."},
	{"TcpExtTCPReqQFullDoCookies", "sockwarden_tcp_syn_queue_full_cookies_total", "SYN cookies sent because the SYN queue was full (TcpExt TCPReqQFullDoCookies)."},
	{"TcpExtSyncookiesSent", "sockwarden_tcp_syncookies_sent_total", "SYN cookies sent (TcpExt SyncookiesSent)."},
	{"TcpExtSyncookiesRecv", "sockwarden_tcp_syncookies_received_total", "Valid SYN cookies received (TcpExt SyncookiesRecv)."},
	{"TcpExtSyncookiesFailed", "sockwarden_tcp_syncookies_failed_total", "Invalid SYN cookies received (TcpExt SyncookiesFailed)."},
	{"TcpExtTCPAbortOnMemory", "sockwarden_tcp_abort_on_memory_total", "Connections aborted for lack of TCP memory or too many orphans (TcpExt TCPAbortOnMemory)."},
	{"TcpExtTCPTimeWaitOverflow", "sockwarden_tcp_timewait_overflow_total", "TIME-WAIT sockets not created because tcp_max_tw_buckets was reached (TcpExt TCPTimeWaitOverflow)."},
	{"TcpAttemptFails", "sockwarden_tcp_attempt_fails_total", "Connection attempts that failed (Tcp AttemptFails)."},
	{"TcpPassiveOpens", "sockwarden_tcp_passive_opens_total", "Connections accepted (Tcp PassiveOpens): the load that makes drops meaningful."},
	{"TcpActiveOpens", "sockwarden_tcp_active_opens_total", "Connections initiated (Tcp ActiveOpens)."},
}

// Metrics is the agent's Prometheus side. Values come from the loop: it
// calls Observe after each sample and diagnosis; a scrape reads the last
// values and never touches the kernel.
type Metrics struct {
	reg *prometheus.Registry

	sampleDur *prometheus.HistogramVec
	samples   *prometheus.CounterVec
	errors    *prometheus.CounterVec
	changes   *prometheus.CounterVec
	mode      *prometheus.GaugeVec

	mu        sync.Mutex
	ns        map[string]*nsSnapshot
	proposals map[string]int
	// fleetUp is 1 or 0 once a fleet store is checked, nil without one.
	fleetUp *float64

	descs map[string]*prometheus.Desc
}

type nsSnapshot struct {
	states    map[string]int // from the last full census
	listeners []sample.Listener
	counters  map[string]uint64
	sockstat  sample.Sockstat
	findings  []diagnose.Finding
	last      time.Time
}

// changeStates are the outcomes a change settles in, spelt as the journal
// spells them (remediate.State), in the sockwarden_changes_total state label.
var changeStates = []string{
	string(remediate.StateVerified), string(remediate.StateRolledBack), string(remediate.StateRefused),
	string(remediate.StateFailed), string(remediate.StateDrift), string(remediate.StateKept),
}

// tcpStateLabel spells sample's ss state names as node_exporter's tcpstat
// collector does (node_tcp_connection_states{state="established"}), so one
// query reads both.
var tcpStateLabel = map[string]string{
	sample.StateEstab: "established", sample.StateSynSent: "syn_sent", sample.StateSynRecv: "syn_recv",
	sample.StateFinWait1: "fin_wait1", sample.StateFinWait2: "fin_wait2", sample.StateTimeWait: "time_wait",
	sample.StateClose: "close", sample.StateCloseWait: "close_wait", sample.StateLastAck: "last_ack",
	sample.StateListen: "listen", sample.StateClosing: "closing",
}

// pageSize turns sockstat's TCP memory (pages) into bytes, as node_exporter's
// node_sockstat_TCP_mem_bytes.
var pageSize = os.Getpagesize()

// NewMetrics builds the collectors on a registry of their own (with the
// process and Go collectors, so the agent's own cost is visible too).
func NewMetrics(version, mode string) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		sampleDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sockwarden_sample_duration_seconds",
			Help:    "Time taken by one sample, by tier (cheap: counters, sockstat, listeners; full: the whole census).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"tier"}),
		samples: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sockwarden_samples_total", Help: "Samples taken, by namespace and tier (cheap, full).",
		}, []string{"netns", "tier"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sockwarden_sample_errors_total", Help: "Samples that failed, by namespace.",
		}, []string{"netns"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sockwarden_changes_total",
			Help: "Settled kernel changes by namespace, sysctl key and outcome (verified, rolled-back, refused, failed, drift, kept).",
		}, []string{"netns", "key", "state"}),
		mode: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sockwarden_agent_info", Help: "The agent's mode (observe, propose, auto), value 1.",
		}, []string{"mode"}),
		ns:        map[string]*nsSnapshot{},
		proposals: map[string]int{},
		descs:     map[string]*prometheus.Desc{},
	}
	d := func(name, help string, labels ...string) {
		m.descs[name] = prometheus.NewDesc(name, help, labels, nil)
	}
	d("sockwarden_tcp_sockets", "TCP sockets by state (spelt as node_exporter's node_tcp_connection_states), from the last full census.", "netns", "state")
	d("sockwarden_listener_queue_length", "A listener's accept-queue length (ss Recv-Q).", "netns", "local")
	d("sockwarden_listener_queue_limit", "A listener's accept-queue limit (ss Send-Q): min(listen backlog, somaxconn at listen time).", "netns", "local")
	d("sockwarden_sockstat_tcp_sockets", "TCP sockets from /proc/net/sockstat by kind (inuse, orphan, tw, alloc), as node_exporter's node_sockstat_TCP_*.", "netns", "kind")
	d("sockwarden_sockstat_tcp_mem_bytes", "Memory held by TCP sockets (/proc/net/sockstat mem, pages times the page size), as node_exporter's node_sockstat_TCP_mem_bytes.", "netns")
	d("sockwarden_findings", "Findings of the last diagnosis by kind, side (app, kernel, peer, none), severity (info, warning, critical) and whether confirmed.", "netns", "kind", "side", "severity", "confirmed")
	d("sockwarden_proposals", "Proposals waiting for an approval (state pending) and changes being verified (state verifying).", "state")
	d("sockwarden_last_sample_timestamp_seconds", "When the namespace was last sampled successfully.", "netns")
	d("sockwarden_fleet_store_up", "1 when the fleet's etcd answered the last check, 0 when not (nothing is applied then); absent without a fleet store.")
	for _, c := range dropCounters {
		d(c.metric, c.help, "netns")
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sockwarden_build_info", Help: "The agent's version, VCS revision and Go version (value 1).",
		ConstLabels: buildLabels(version),
	})
	build.Set(1)
	m.mode.WithLabelValues(mode).Set(1)
	m.reg.MustRegister(m.sampleDur, m.samples, m.errors, m.changes, m.mode, build, (*snapshotCollector)(m),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	return m
}

// buildLabels are sockwarden_build_info's labels: the version given at
// build time (-X main.version) and what the Go toolchain recorded.
func buildLabels(version string) prometheus.Labels {
	l := prometheus.Labels{"version": version, "revision": "unknown", "goversion": runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				l["revision"] = s.Value
			}
		}
	}
	return l
}

// Configure sets the mode and starts the counters of every namespace
// watched and every allowed sysctl at 0, so that rate() and increase() see
// their first sample, tier, error and change (Prometheus counts nothing for
// a series that appears at 1). Called at start and on each reload; series
// of a namespace no longer watched stay, counters never go back.
func (m *Metrics) Configure(mode string, netns, keys []string) {
	m.mode.Reset()
	m.mode.WithLabelValues(mode).Set(1)
	for _, ns := range netns {
		lbl := nsLabel(ns)
		for _, tier := range []string{TierCheap, TierFull} {
			m.samples.WithLabelValues(lbl, tier)
			m.sampleDur.WithLabelValues(tier)
		}
		m.errors.WithLabelValues(lbl)
		for _, k := range keys {
			for _, st := range changeStates {
				m.changes.WithLabelValues(lbl, k, st)
			}
		}
	}
}

// Registry is the registry the HTTP handler serves (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

func nsLabel(netns string) string {
	if netns == "" {
		return NetnsLabel
	}
	return netns
}

// ObserveSample records one sample of a namespace. A full census (Partial
// false) also replaces the socket-state counts.
func (m *Metrics) ObserveSample(netns, tier string, s *sample.Sample) {
	lbl := nsLabel(netns)
	m.sampleDur.WithLabelValues(tier).Observe(s.Duration.Seconds())
	m.samples.WithLabelValues(lbl, tier).Inc()
	m.mu.Lock()
	defer m.mu.Unlock()
	snap := m.snap(lbl)
	if tier == TierFull && s.States != nil {
		snap.states = s.States
	}
	snap.listeners = s.Listeners
	snap.counters = s.Counters
	snap.sockstat = s.Sockstat
	snap.last = s.Time
}

// ObserveError counts a failed sample.
func (m *Metrics) ObserveError(netns string) { m.errors.WithLabelValues(nsLabel(netns)).Inc() }

// ObserveFindings replaces a namespace's findings with the last diagnosis.
func (m *Metrics) ObserveFindings(netns string, fs []diagnose.Finding) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.snap(nsLabel(netns)).findings = fs
}

// SetProposals replaces the count of proposals by state.
func (m *Metrics) SetProposals(byState map[string]int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.proposals = byState
}

// SetFleetUp records whether the fleet store answered its last check.
func (m *Metrics) SetFleetUp(up bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := 0.0
	if up {
		v = 1
	}
	m.fleetUp = &v
}

// ChangeOutcome counts one change reaching a state.
func (m *Metrics) ChangeOutcome(netns, key, state string) {
	m.changes.WithLabelValues(nsLabel(netns), key, state).Inc()
}

func (m *Metrics) snap(lbl string) *nsSnapshot {
	s := m.ns[lbl]
	if s == nil {
		s = &nsSnapshot{}
		m.ns[lbl] = s
	}
	return s
}

// snapshotCollector emits the last observed values at scrape time.
type snapshotCollector Metrics

func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	m := (*Metrics)(c)
	m.mu.Lock()
	defer m.mu.Unlock()
	gauge := func(name string, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(m.descs[name], prometheus.GaugeValue, v, labels...)
	}
	for lbl, s := range m.ns {
		if s.states != nil {
			// Every state, 0 included, once a census was taken.
			for _, st := range sample.States {
				gauge("sockwarden_tcp_sockets", float64(s.states[st]), lbl, tcpStateLabel[st])
			}
		}
		seen := map[string]bool{}
		for _, l := range s.listeners {
			if seen[l.Local] { // SO_REUSEPORT groups: one series per address
				continue
			}
			seen[l.Local] = true
			gauge("sockwarden_listener_queue_length", float64(l.RecvQ), lbl, l.Local)
			gauge("sockwarden_listener_queue_limit", float64(l.SendQ), lbl, l.Local)
		}
		if !s.last.IsZero() {
			ss := s.sockstat
			for kind, v := range map[string]int{"inuse": ss.TCPInUse, "orphan": ss.TCPOrphan, "tw": ss.TCPTimeWait, "alloc": ss.TCPAlloc} {
				gauge("sockwarden_sockstat_tcp_sockets", float64(v), lbl, kind)
			}
			gauge("sockwarden_sockstat_tcp_mem_bytes", float64(ss.TCPMemPages)*float64(pageSize), lbl)
			gauge("sockwarden_last_sample_timestamp_seconds", float64(s.last.UnixNano())/1e9, lbl)
		}
		for _, dc := range dropCounters {
			if v, ok := s.counters[dc.nstat]; ok {
				ch <- prometheus.MustNewConstMetric(m.descs[dc.metric], prometheus.CounterValue, float64(v), lbl)
			}
		}
		type fkey struct{ kind, side, sev, conf string }
		counts := map[fkey]int{}
		for _, f := range s.findings {
			counts[fkey{f.Kind, string(f.Side), string(f.Severity), fmt.Sprint(f.Confirmed)}]++
		}
		for k, n := range counts {
			gauge("sockwarden_findings", float64(n), lbl, k.kind, k.side, k.sev, k.conf)
		}
	}
	states := make([]string, 0, len(m.proposals))
	for st := range m.proposals {
		states = append(states, st)
	}
	sort.Strings(states)
	for _, st := range states {
		gauge("sockwarden_proposals", float64(m.proposals[st]), st)
	}
	if m.fleetUp != nil {
		gauge("sockwarden_fleet_store_up", *m.fleetUp)
	}
}

// metricsLimits bound what the endpoint's clients can hold. Without them,
// idle keep-alive connections were never closed: 9,000 of them from an
// unprivileged user took the agent past the unit's 256 MB cap. A scraper
// that finds every slot taken waits in the listen backlog until one frees,
// at most readHeader (a client that sends nothing) or idle (a client that
// sent one request and holds on) later: under Prometheus's default 10 s
// scrape timeout.
var metricsLimits = struct {
	readHeader, read, write, idle time.Duration
	maxConns                      int
}{readHeader: 3 * time.Second, read: 5 * time.Second, write: 10 * time.Second, idle: 5 * time.Second, maxConns: 16}

// MetricsServer is the /metrics endpoint: plain HTTP, or TLS and basic
// auth from metrics.web_config_file (the exporter-toolkit web config that
// node_exporter reads, https://prometheus.io/docs/prometheus/latest/configuration/https/).
type MetricsServer struct {
	ln        net.Listener
	srv       *http.Server
	webConfig string
	log       *zap.Logger
}

// ListenMetrics checks the web config and opens the listener, so that a bad
// metrics.listen or metrics.web_config_file stops the agent at start with
// the key named, instead of a running agent with no endpoint. A
// non-loopback address is allowed (the operator asked for it) but logged.
func ListenMetrics(c config.Metrics, m *Metrics, log *zap.Logger) (*MetricsServer, error) {
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return nil, fmt.Errorf("metrics.listen %q: %w", c.Listen, err)
	}
	if c.WebConfigFile != "" {
		if err := web.Validate(c.WebConfigFile); err != nil {
			return nil, fmt.Errorf("metrics.web_config_file %q: %w", c.WebConfigFile, err)
		}
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		if c.WebConfigFile == "" {
			log.Warn("metrics endpoint is reachable from the network without TLS or authentication (metrics.web_config_file)", zap.String("listen", c.Listen))
		} else {
			log.Info("metrics endpoint is reachable from the network", zap.String("listen", c.Listen), zap.String("web_config_file", c.WebConfigFile))
		}
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return nil, fmt.Errorf("metrics.listen %q: %w", c.Listen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog: zap.NewStdLog(log), MaxRequestsInFlight: 4, Timeout: metricsLimits.write / 2,
	}))
	lim := metricsLimits
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: lim.readHeader,
		ReadTimeout:       lim.read,
		WriteTimeout:      lim.write,
		IdleTimeout:       lim.idle,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          zap.NewStdLog(log),
	}
	return &MetricsServer{ln: netutil.LimitListener(ln, lim.maxConns), srv: srv, webConfig: c.WebConfigFile, log: log}, nil
}

// Addr is the address the endpoint listens on.
func (s *MetricsServer) Addr() string { return s.ln.Addr().String() }

// Serve serves until ctx is done.
func (s *MetricsServer) Serve(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(sctx)
	}()
	s.log.Info("metrics endpoint up", zap.String("listen", s.Addr()), zap.Bool("web_config", s.webConfig != ""))
	flags := &web.FlagConfig{WebConfigFile: &s.webConfig}
	// exporter-toolkit logs through slog: its lines go to zap as text.
	slogger := slog.New(slog.NewTextHandler(zap.NewStdLog(s.log).Writer(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := web.Serve(s.ln, s.srv, flags, slogger); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// ServeMetrics serves /metrics as c says until ctx is done.
func ServeMetrics(ctx context.Context, c config.Metrics, m *Metrics, log *zap.Logger) error {
	s, err := ListenMetrics(c, m, log)
	if err != nil {
		return err
	}
	return s.Serve(ctx)
}

// Sampling tiers.
const (
	TierCheap = "cheap"
	TierFull  = "full"
)
