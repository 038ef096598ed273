package agent

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/sample"
)

func TestMetricsExposition(t *testing.T) {
	m := NewMetrics("test", "propose")
	full := &sample.Sample{
		Time:      time.Unix(1700000000, 0),
		Duration:  30 * time.Millisecond,
		States:    map[string]int{"ESTAB": 3, "LISTEN": 1},
		Listeners: []sample.Listener{{Local: "0.0.0.0:8080", RecvQ: 129, SendQ: 128}},
		Counters:  map[string]uint64{"TcpExtListenOverflows": 42, "TcpPassiveOpens": 1000, "TcpExtSomethingElse": 7},
		Sockstat:  sample.Sockstat{TCPInUse: 4, TCPTimeWait: 2},
	}
	m.ObserveSample("", TierFull, full)
	// A cheap sample afterwards updates the queues and counters but keeps
	// the states of the last census.
	cheap := *full
	cheap.States = nil
	cheap.Listeners = []sample.Listener{{Local: "0.0.0.0:8080", RecvQ: 5, SendQ: 128}}
	cheap.Counters = map[string]uint64{"TcpExtListenOverflows": 50, "TcpPassiveOpens": 1100}
	m.ObserveSample("", TierCheap, &cheap)
	m.ObserveFindings("", []diagnose.Finding{
		{Kind: diagnose.KindAcceptQueueOverflow, Side: diagnose.SideKernel, Severity: diagnose.SevCritical, Confirmed: true},
		{Kind: diagnose.KindCloseWaitPile, Side: diagnose.SideApp, Severity: diagnose.SevWarning, Confirmed: true},
		{Kind: diagnose.KindCloseWaitPile, Side: diagnose.SideApp, Severity: diagnose.SevWarning, Confirmed: true},
	})
	m.SetProposals(map[string]int{"pending": 1})
	m.ChangeOutcome("", "net.core.somaxconn", "verified")

	want := `
# HELP sockwarden_tcp_sockets TCP sockets by state (spelt as node_exporter's node_tcp_connection_states), from the last full census.
# TYPE sockwarden_tcp_sockets gauge
sockwarden_tcp_sockets{netns="host",state="close"} 0
sockwarden_tcp_sockets{netns="host",state="close_wait"} 0
sockwarden_tcp_sockets{netns="host",state="closing"} 0
sockwarden_tcp_sockets{netns="host",state="established"} 3
sockwarden_tcp_sockets{netns="host",state="fin_wait1"} 0
sockwarden_tcp_sockets{netns="host",state="fin_wait2"} 0
sockwarden_tcp_sockets{netns="host",state="last_ack"} 0
sockwarden_tcp_sockets{netns="host",state="listen"} 1
sockwarden_tcp_sockets{netns="host",state="syn_recv"} 0
sockwarden_tcp_sockets{netns="host",state="syn_sent"} 0
sockwarden_tcp_sockets{netns="host",state="time_wait"} 0
# HELP sockwarden_listener_queue_length A listener's accept-queue length (ss Recv-Q).
# TYPE sockwarden_listener_queue_length gauge
sockwarden_listener_queue_length{local="0.0.0.0:8080",netns="host"} 5
# HELP sockwarden_listener_queue_limit A listener's accept-queue limit (ss Send-Q): min(listen backlog, somaxconn at listen time).
# TYPE sockwarden_listener_queue_limit gauge
sockwarden_listener_queue_limit{local="0.0.0.0:8080",netns="host"} 128
# HELP sockwarden_tcp_listen_overflows_total Connections dropped because a listener's accept queue was full (TcpExt ListenOverflows).
# TYPE sockwarden_tcp_listen_overflows_total counter
sockwarden_tcp_listen_overflows_total{netns="host"} 50
# HELP sockwarden_findings Findings of the last diagnosis by kind, side (app, kernel, peer, none), severity (info, warning, critical) and whether confirmed.
# TYPE sockwarden_findings gauge
sockwarden_findings{confirmed="true",kind="accept-queue-overflow",netns="host",severity="critical",side="kernel"} 1
sockwarden_findings{confirmed="true",kind="close-wait-pile",netns="host",severity="warning",side="app"} 2
# HELP sockwarden_proposals Proposals waiting for an approval (state pending) and changes being verified (state verifying).
# TYPE sockwarden_proposals gauge
sockwarden_proposals{state="pending"} 1
# HELP sockwarden_changes_total Settled kernel changes by namespace, sysctl key and outcome (verified, rolled-back, refused, failed, drift, kept).
# TYPE sockwarden_changes_total counter
sockwarden_changes_total{key="net.core.somaxconn",netns="host",state="verified"} 1
# HELP sockwarden_samples_total Samples taken, by namespace and tier (cheap, full).
# TYPE sockwarden_samples_total counter
sockwarden_samples_total{netns="host",tier="cheap"} 1
sockwarden_samples_total{netns="host",tier="full"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"sockwarden_tcp_sockets", "sockwarden_listener_queue_length", "sockwarden_listener_queue_limit",
		"sockwarden_tcp_listen_overflows_total", "sockwarden_findings", "sockwarden_proposals",
		"sockwarden_changes_total", "sockwarden_samples_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m.sampleDur); n != 2 {
		t.Errorf("sample duration series = %d, want 2 (cheap, full)", n)
	}
}

// Configure starts every counter of a watched namespace and allowed key at
// 0, so that the first sample, error or rollback is an increase; sockstat
// memory is in bytes.
func TestMetricsCountersStartAtZero(t *testing.T) {
	m := NewMetrics("test", "propose")
	m.Configure("observe", []string{"", "/run/netns/a"}, []string{"net.core.somaxconn"})
	want := `
# HELP sockwarden_sample_errors_total Samples that failed, by namespace.
# TYPE sockwarden_sample_errors_total counter
sockwarden_sample_errors_total{netns="/run/netns/a"} 0
sockwarden_sample_errors_total{netns="host"} 0
# HELP sockwarden_agent_info The agent's mode (observe, propose, auto), value 1.
# TYPE sockwarden_agent_info gauge
sockwarden_agent_info{mode="observe"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "sockwarden_sample_errors_total", "sockwarden_agent_info"); err != nil {
		t.Error(err)
	}
	for name, n := range map[string]int{"sockwarden_samples_total": 4, "sockwarden_changes_total": 2 * len(changeStates)} {
		if got := countSeries(t, m, name); got != n {
			t.Errorf("%s: %d series at start, want %d", name, got, n)
		}
	}
	m.ObserveSample("", TierCheap, &sample.Sample{Time: time.Now(), Sockstat: sample.Sockstat{TCPMemPages: 3}})
	want = fmt.Sprintf(`
# HELP sockwarden_sockstat_tcp_mem_bytes Memory held by TCP sockets (/proc/net/sockstat mem, pages times the page size), as node_exporter's node_sockstat_TCP_mem_bytes.
# TYPE sockwarden_sockstat_tcp_mem_bytes gauge
sockwarden_sockstat_tcp_mem_bytes{netns="host"} %d
`, 3*os.Getpagesize())
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "sockwarden_sockstat_tcp_mem_bytes"); err != nil {
		t.Error(err)
	}
}

func countSeries(t *testing.T, m *Metrics, name string) int {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

// Every metric name passes promlint (Prometheus naming conventions).
func TestMetricsLint(t *testing.T) {
	m := NewMetrics("test", "propose")
	m.ObserveSample("", TierFull, &sample.Sample{Time: time.Now(), States: map[string]int{"ESTAB": 1},
		Listeners: []sample.Listener{{Local: "[::]:22"}}, Counters: map[string]uint64{"TcpExtListenOverflows": 1}})
	m.ObserveFindings("", []diagnose.Finding{{Kind: "x", Side: "app"}})
	m.SetProposals(map[string]int{"pending": 1})
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "sockwarden_") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
}

func TestServeMetricsHTTP(t *testing.T) {
	m := NewMetrics("test", "observe")
	srv, err := ListenMetrics(config.Metrics{Listen: "127.0.0.1:0"}, m, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	var body string
	for i := 0; i < 50; i++ {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{`sockwarden_agent_info{mode="observe"} 1`, `sockwarden_build_info{goversion="` + runtime.Version() + `",revision=`} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %s:\n%.500s", want, body)
		}
	}
}

// metrics.web_config_file turns on basic auth (and TLS) through
// exporter-toolkit; a bad file stops the endpoint at start, naming the key.
func TestServeMetricsWebConfig(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(good, []byte("basic_auth_users:\n  prometheus: "+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(bad, []byte("tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ListenMetrics(config.Metrics{Listen: "127.0.0.1:0", WebConfigFile: bad}, NewMetrics("test", "observe"), zap.NewNop()); err == nil ||
		!strings.Contains(err.Error(), "metrics.web_config_file") {
		t.Errorf("a web config with missing certificates: err = %v, want one naming metrics.web_config_file", err)
	}

	srv, err := ListenMetrics(config.Metrics{Listen: "127.0.0.1:0", WebConfigFile: good}, NewMetrics("test", "observe"), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	for _, tc := range []struct {
		name, user, pass string
		want             int
	}{
		{"no credentials", "", "", http.StatusUnauthorized},
		{"wrong password", "prometheus", "nope", http.StatusUnauthorized},
		{"right password", "prometheus", "s3cret", http.StatusOK},
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+srv.Addr()+"/metrics", nil)
		if tc.user != "" {
			req.SetBasicAuth(tc.user, tc.pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}
}
