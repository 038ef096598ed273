package sample

import (
	"slices"
	"strings"
	"testing"
)

// TestPasteListenerPorts: a table filtered by its local port alone is
// whole for that port, even empty; one filtered otherwise (a process
// name) says nothing of the listeners it does not show.
func TestPasteListenerPorts(t *testing.T) {
	for _, tc := range []struct {
		name, text  string
		ports       []uint16
		missingPart string // in the "listeners" missing reason
	}{
		{"ss filtered by port, empty", "$ ss -tln 'sport = :8080'\nState  Recv-Q Send-Q Local Address:Port Peer Address:Port\n",
			[]uint16{8080}, "listeners on ports other than 8080 not read"},
		{"netstat grepped for a port", "$ netstat -tlnp | grep 9000\ntcp6       0      0 :::9000                 :::*                    LISTEN      17706/docker-proxy-\n",
			[]uint16{9000}, "listeners on ports other than 9000 not read"},
		{"netstat grepped for a process", "$ netstat -nap | grep ardb\ntcp        0      0 192.168.1.207:16379     0.0.0.0:*               LISTEN      44667/./ardb-server\n",
			nil, "listeners other than the 1 shown not read"},
		{"ss grepped for a port, cut by the poster", "$ ss -tln | grep 443\nLISTEN 0 128 0.0.0.0:443 0.0.0.0:*\n...\n",
			nil, "listeners other than the 1 shown not read"},
		// Filters that do not keep every listener of the port: no
		// listeners at all (netstat without -l or -a), the port left
		// out (grep -v, "! sport"), another condition (and dst), an
		// excluded state, one family, service names (no -n).
		{"netstat without -l or -a", "$ netstat -ntp | grep 8080\ntcp        0      0 10.0.0.5:8080           10.0.0.9:51234          ESTABLISHED 1234/java\n",
			nil, "listeners unknown"},
		{"ss grep -v", "$ ss -tln | grep -v 8080\nState  Recv-Q Send-Q Local Address:Port Peer Address:Port\nLISTEN 0      128    0.0.0.0:22         0.0.0.0:*\n",
			nil, "listeners other than the 1 shown not read"},
		{"netstat grep -v", "$ netstat -tlnp | grep -v 8080\ntcp        0      0 0.0.0.0:22              0.0.0.0:*               LISTEN      900/sshd\n",
			nil, "listeners other than the 1 shown not read"},
		{"ss not sport", "$ ss -tln '! sport = :8080'\nState  Recv-Q Send-Q Local Address:Port Peer Address:Port\nLISTEN 0      128    0.0.0.0:22         0.0.0.0:*\n",
			nil, "listeners other than the 1 shown not read"},
		{"ss sport and dst", "$ ss -tan 'sport = :8080 and dst 10.0.0.9'\nState  Recv-Q Send-Q Local Address:Port Peer Address:Port\nESTAB  0      0      10.0.0.5:8080      10.0.0.9:51234\n",
			nil, "listeners unknown"},
		{"ss exclude listening", "$ ss -tan exclude listening 'sport = :8080'\nState  Recv-Q Send-Q Local Address:Port Peer Address:Port\nESTAB  0      0      10.0.0.5:8080      10.0.0.9:51234\n",
			nil, "listeners unknown"},
		{"netstat without -n", "$ netstat -tlp | grep 80\ntcp        0      0 0.0.0.0:8080            0.0.0.0:*               LISTEN      1234/java\n",
			nil, "listeners other than the 1 shown not read"},
		{"ss of one family", "$ ss -4tln 'sport = :8080'\nState  Recv-Q Send-Q Local Address:Port Peer Address:Port\n",
			nil, "listeners unknown"},
	} {
		s := readPaste(t, tc.text)[0]
		if !slices.Equal(s.ListenerPorts, tc.ports) {
			t.Errorf("%s: listener ports %v, want %v", tc.name, s.ListenerPorts, tc.ports)
		}
		var reason string
		for _, m := range s.Missing {
			if m.Source == "listeners" {
				reason = m.Reason
			}
		}
		if !strings.Contains(reason, tc.missingPart) {
			t.Errorf("%s: listeners missing %q, want it to say %q", tc.name, reason, tc.missingPart)
		}
	}
}
