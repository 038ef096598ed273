package agent

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
)

// notifySocket listens on a NOTIFY_SOCKET of the test's own and returns a
// function that collects the datagrams received so far.
func notifySocket(t *testing.T) func() []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return func() []string {
		var got []string
		buf := make([]byte, 4096)
		for {
			_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			n, err := c.Read(buf)
			if err != nil {
				return got
			}
			got = append(got, string(buf[:n]))
		}
	}
}

func TestNotifyProtocol(t *testing.T) {
	tests := []struct {
		name        string
		watchdogUS  string
		watchdogPID string
		do          func(n *Notifier)
		want        []string
	}{
		{
			name: "ready carries the status",
			do:   func(n *Notifier) { n.Ready("healthy") },
			want: []string{"READY=1\nSTATUS=healthy"},
		},
		{
			name: "status is one line and sent once while unchanged",
			do: func(n *Notifier) {
				n.Status("2 proposals pending\nsecond line dropped")
				n.Status("2 proposals pending")
				n.Status("healthy")
			},
			want: []string{"STATUS=2 proposals pending", "STATUS=healthy"},
		},
		{
			name:       "watchdog pings when WATCHDOG_USEC is set",
			watchdogUS: "4000000",
			do:         func(n *Notifier) { n.Watchdog(); n.Watchdog() },
			want:       []string{"WATCHDOG=1", "WATCHDOG=1"},
		},
		{
			name: "watchdog silent when systemd set no watchdog",
			do:   func(n *Notifier) { n.Watchdog() },
			want: nil,
		},
		{
			name:        "watchdog silent when meant for another pid",
			watchdogUS:  "4000000",
			watchdogPID: "1",
			do:          func(n *Notifier) { n.Watchdog() },
			want:        nil,
		},
		{
			name: "stopping",
			do:   func(n *Notifier) { n.Stopping("stopping: rolling back net.core.somaxconn") },
			want: []string{"STOPPING=1\nSTATUS=stopping: rolling back net.core.somaxconn"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			read := notifySocket(t)
			t.Setenv("WATCHDOG_USEC", tc.watchdogUS)
			t.Setenv("WATCHDOG_PID", tc.watchdogPID)
			n := NewNotifier(zap.NewNop())
			tc.do(n)
			if diff := cmp.Diff(tc.want, read()); diff != "" {
				t.Errorf("datagrams (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNotifyReloadingThenReady(t *testing.T) {
	read := notifySocket(t)
	n := NewNotifier(zap.NewNop())
	n.Reloading()
	n.Ready("healthy")
	got := read()
	if len(got) != 2 {
		t.Fatalf("got %d datagrams, want 2: %q", len(got), got)
	}
	fields := strings.Split(got[0], "\n")
	if fields[0] != "RELOADING=1" || !strings.HasPrefix(fields[1], "MONOTONIC_USEC=") {
		t.Errorf("reload datagram = %q, want RELOADING=1 then MONOTONIC_USEC=", got[0])
	}
	if got[1] != "READY=1\nSTATUS=healthy" {
		t.Errorf("after reload = %q, want READY=1 with status", got[1])
	}
}

func TestNotifyWatchdogInterval(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "30000000")
	t.Setenv("WATCHDOG_PID", "")
	if got := NewNotifier(zap.NewNop()).WatchdogInterval(); got != 15*time.Second {
		t.Errorf("WatchdogInterval = %s, want 15s (half of WatchdogSec)", got)
	}
}

func TestNotifyOutsideSystemdIsSilent(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := NewNotifier(zap.NewNop())
	n.Ready("healthy") // must neither fail nor block
	if !n.IsReady() {
		t.Error("IsReady = false after Ready")
	}
}

func TestStatusLine(t *testing.T) {
	tests := []struct {
		name string
		st   Status
		want string
	}{
		{"healthy", Status{Mode: "propose", Ready: true, Diagnosed: true}, "healthy"},
		{"first diagnosis running", Status{Mode: "propose", Ready: true}, "sampling (first diagnosis running)"},
		// Before the first good sample nothing is known: not "healthy".
		{"before the first sample", Status{Mode: "propose"}, "sampling (no sample yet)"},
		{"before the first sample, observe", Status{Mode: "observe"}, "sampling (no sample yet) (observe mode)"},
		{"pending", Status{Mode: "propose", Pending: make([]ProposalBrief, 2)}, "2 proposals pending"},
		{"one pending", Status{Mode: "propose", Pending: make([]ProposalBrief, 1)}, "1 proposal pending"},
		{"verifying", Status{Mode: "propose", Verifying: &ChangeBrief{Key: "net.core.somaxconn", Old: "4096", New: "8192"}},
			"verifying net.core.somaxconn 4096->8192"},
		{"app findings", Status{Mode: "observe", Unhealthy: 1}, "1 finding(s), no kernel change proposed (observe mode)"},
		{"sampling error", Status{Mode: "propose", LastError: "netlink: permission denied"}, "sampling failing: netlink: permission denied"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := StatusLine(tc.st); got != tc.want {
				t.Errorf("StatusLine = %q, want %q", got, tc.want)
			}
		})
	}
}
