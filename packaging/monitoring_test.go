package packaging

import (
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sockwarden/sockwarden/agent"
	"github.com/sockwarden/sockwarden/diagnose"
	"github.com/sockwarden/sockwarden/sample"
)

// The shipped alert rules and dashboard name only metrics the agent
// exports: a rename in agent/metrics.go that forgets them fails here, not
// silently in someone's Prometheus. (promtool checks the rules' syntax and
// behaviour in .ci/run; this checks the names.)
func TestMonitoringFilesNameRealMetrics(t *testing.T) {
	m := agent.NewMetrics("test", "propose")
	m.Configure("propose", []string{""}, []string{"net.core.somaxconn"})
	m.ObserveSample("", agent.TierFull, &sample.Sample{Time: time.Now(), States: map[string]int{sample.StateEstab: 1},
		Listeners: []sample.Listener{{Local: "0.0.0.0:80"}}, Counters: map[string]uint64{
			"TcpExtListenOverflows": 1, "TcpExtListenDrops": 1, "TcpExtTCPReqQFullDrop": 1, "TcpExtSyncookiesSent": 1, "TcpPassiveOpens": 1,
		}})
	m.ObserveFindings("", []diagnose.Finding{{Kind: diagnose.KindSynFlood, Side: diagnose.SidePeer}})
	m.SetProposals(map[string]int{"pending": 1})
	m.SetFleetUp(true)
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, mf := range mfs {
		n := mf.GetName()
		exported[n] = true
		if mf.GetType().String() == "HISTOGRAM" {
			exported[n+"_bucket"], exported[n+"_sum"], exported[n+"_count"] = true, true, true
		}
	}
	name := regexp.MustCompile(`\b(sockwarden|process)_[a-z_]+\b`)
	for _, f := range []string{"prometheus/sockwarden.rules.yml", "prometheus/sockwarden.rules.test.yml", "grafana/sockwarden.json"} {
		text := mustRead(t, f)
		if strings.HasSuffix(f, ".json") {
			var v map[string]any
			if err := json.Unmarshal([]byte(text), &v); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		}
		seen := map[string]bool{}
		for _, n := range name.FindAllString(text, -1) {
			seen[n] = true
		}
		var missing []string
		for n := range seen {
			if !exported[n] {
				missing = append(missing, n)
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			t.Errorf("%s names metrics the agent does not export: %v", f, missing)
		}
		if len(seen) == 0 {
			t.Errorf("%s names no metric", f)
		}
	}
}
