package sample

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files of the text output")

// The text summary of the captured bundle, as `sockwarden sample --from`
// prints it, against a golden file (go test ./sample -run TestWriteTextGolden -update).
func TestWriteTextGolden(t *testing.T) {
	ss, err := FromBundle("testdata/bundle/ns")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for i, s := range ss {
		if err := WriteText(&b, s); err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			if err := WriteRates(&b, ss[i-1], s); err != nil {
				t.Fatal(err)
			}
		}
		b.WriteString("\n")
	}
	golden := filepath.Join("testdata", "text", "bundle-ns.golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), b.String()); diff != "" {
		t.Errorf("(-golden +got):\n%s", diff)
	}
	for _, must := range []string{"0.0.0.0:8080    7       128     5%", "127.0.0.1:9000  3       2       150% FULL", "usable ephemeral ports 28232", "Missing (3)"} {
		if !strings.Contains(b.String(), must) {
			t.Errorf("output lacks %q", must)
		}
	}
}

func TestUsablePorts(t *testing.T) {
	tests := []struct {
		rng, reserved string
		want          PortRange
		ok            bool
	}{
		{"32768 60999", "", PortRange{32768, 60999, 0, 28232}, true},
		{"32768 60999", "8080,32768-32777, 61000-62000,40000", PortRange{32768, 60999, 11, 28221}, true},
		{"1024 1024", "1024", PortRange{1024, 1024, 1, 0}, true},
		{"40000 30000", "", PortRange{}, false},
		{"", "", PortRange{}, false},
		{"32768 60999", "x,5-", PortRange{32768, 60999, 0, 28232}, true},
	}
	for _, tt := range tests {
		s := &Sample{Sysctls: map[string]string{"net.ipv4.ip_local_port_range": tt.rng, "net.ipv4.ip_local_reserved_ports": tt.reserved}}
		got, ok := s.UsablePorts()
		if ok != tt.ok || got != tt.want {
			t.Errorf("UsablePorts(%q, %q) = %+v, %v; want %+v, %v", tt.rng, tt.reserved, got, ok, tt.want, tt.ok)
		}
	}
}

// The JSON of a bundle sample has the fields issue 2 names, under those
// names: schema, states keyed by ss names, listeners with local/recv_q/
// send_q, sysctls as folded strings.
func TestSampleJSONShape(t *testing.T) {
	ss, err := FromBundle("testdata/bundle/ns")
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(ss[0])
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Schema    string            `json:"schema"`
		States    map[string]int    `json:"states"`
		Listeners []map[string]any  `json:"listeners"`
		Sysctls   map[string]string `json:"sysctls"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.Schema != "sockwarden.sample/v1" || m.States["TIME-WAIT"] != 8 || m.States["SYN-RECV"] != 3 || len(m.States) != 11 {
		t.Errorf("schema %q states %v", m.Schema, m.States)
	}
	l := m.Listeners[3]
	if l["local"] != "0.0.0.0:8080" || l["recv_q"] != float64(7) || l["send_q"] != float64(128) {
		t.Errorf("listener %v", l)
	}
	if m.Sysctls["net.ipv4.ip_local_port_range"] != "32768 60999" {
		t.Errorf("sysctls %v", m.Sysctls)
	}
}

// docs/sample-schema.md documents every JSON field of a Sample.
func TestSchemaDocCoversEveryField(t *testing.T) {
	doc, err := os.ReadFile("../docs/sample-schema.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[reflect.Type]bool{}
	var walk func(rt reflect.Type)
	walk = func(rt reflect.Type) {
		for rt.Kind() == reflect.Pointer || rt.Kind() == reflect.Slice || rt.Kind() == reflect.Map {
			rt = rt.Elem()
		}
		if rt.Kind() != reflect.Struct || seen[rt] || rt.PkgPath() != reflect.TypeFor[Sample]().PkgPath() {
			return
		}
		seen[rt] = true
		for i := range rt.NumField() {
			f := rt.Field(i)
			if f.Anonymous {
				walk(f.Type)
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			if !strings.Contains(string(doc), "`"+name+"`") {
				t.Errorf("%s.%s (json %q) is not documented in docs/sample-schema.md", rt.Name(), f.Name, name)
			}
			walk(f.Type)
		}
	}
	walk(reflect.TypeFor[Sample]())
	if len(seen) < 8 {
		t.Errorf("walked only %d types", len(seen))
	}
}

// The parts of the text a bundle never has: owners' units and descriptor
// counts, a listener watch, a partial sample, unknown time and port range.
func TestWriteTextLiveParts(t *testing.T) {
	nginx := Owner{PID: 812, Comm: "nginx", Unit: "nginx.service", FDs: 1000, FDLimit: 1024}
	s := &Sample{
		Schema: Schema, Source: "live", Host: "web1", Netns: "/run/netns/web", Partial: true,
		States: NewStates(), Total: 0,
		Listeners: []Listener{{Local: "0.0.0.0:80", Port: 80, RecvQ: 512, SendQ: 511, Owners: []Owner{nginx, {PID: 813, Comm: "nginx"}, {PID: 814, Comm: "nginx"}, {PID: 815, Comm: "nginx"}}}},
		Processes: []Process{{Owner: nginx, Total: 3, States: map[string]int{StateCloseWait: 2, StateListen: 1}}},
		Sysctls:   map[string]string{},
		Counters:  map[string]uint64{"TcpExtListenOverflows": 7},
		Watch:     &Watch{Polls: 50, Interval: 20 * time.Millisecond, Peaks: []ListenerPeak{{Local: "0.0.0.0:80", SendQ: 511, PeakRecvQ: 512, AtLimit: 40, Drained: 0, Polls: 50}}},
		Missing:   []Missing{{Source: "/dev/kmsg", Reason: "permission denied"}},
	}
	var b bytes.Buffer
	if err := WriteText(&b, s); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"sockwarden sample: web1, netns /run/netns/web, time unknown (live)",
		"partial sample (cheap tier)",
		"0.0.0.0:80  512     511     100% FULL  nginx[812] nginx.service fds 1000/1024, nginx[813], nginx[814], +1 more",
		"nginx[812] nginx.service  3        1000/1024  CLOSE-WAIT 2 LISTEN 1",
		"ephemeral port range unknown",
		"TcpExtListenOverflows       7",
		"TcpExtListenDrops           -",
		"net.core.somaxconn                   (absent)",
		"0.0.0.0:80  511     512          40/50     0",
		"Missing (1): the figures above lack these sources\n  /dev/kmsg: permission denied\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "Missing") != 1 {
		t.Errorf("missing said more than once:\n%s", out)
	}
}
