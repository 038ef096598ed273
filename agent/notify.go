package agent

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"
)

// Notifier speaks the sd_notify protocol for the agent: READY=1 after the
// first good sample, WATCHDOG=1 from the sampling loop, STATUS= one-liners,
// RELOADING=1 around a config reload and STOPPING=1 on shutdown. Outside
// systemd (no NOTIFY_SOCKET) every call is a cheap no-op.
//
// The watchdog is deliberately not fed by a goroutine of its own: only the
// loop calls Watchdog, so a loop that stalls stops feeding it and systemd
// kills and restarts the service (WatchdogSec= in the unit).
type Notifier struct {
	log *zap.Logger

	mu         sync.Mutex
	ready      bool
	lastStatus string
	// watchdog is the interval systemd expects pings within (0: off).
	watchdog time.Duration
	// send is daemon.SdNotify; replaced only by tests of error paths.
	send func(unset bool, state string) (bool, error)
}

// NewNotifier reads NOTIFY_SOCKET and WATCHDOG_USEC/WATCHDOG_PID from the
// environment (through go-systemd) and returns a notifier.
func NewNotifier(log *zap.Logger) *Notifier {
	n := &Notifier{log: log.Named("notify"), send: daemon.SdNotify}
	wd, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		n.log.Warn("watchdog settings unreadable, not feeding it", zap.Error(err))
	}
	n.watchdog = wd
	return n
}

// WatchdogInterval is how often the loop must call Watchdog: half the
// service's WatchdogSec=, as sd_watchdog_enabled(3) advises. 0 when the
// watchdog is off or the service is not ours.
func (n *Notifier) WatchdogInterval() time.Duration { return n.watchdog / 2 }

// notify sends one state string. (false, nil) from SdNotify means "not
// under systemd", which is not an error.
func (n *Notifier) notify(state string) {
	sent, err := n.send(false, state)
	if err != nil {
		n.log.Warn("sd_notify failed", zap.String("state", firstLine(state)), zap.Error(err))
		return
	}
	if sent {
		n.log.Debug("sd_notify", zap.String("state", firstLine(state)))
	}
}

// Ready tells systemd that start-up (or a reload) is done, with a status
// line. Call it after the first good sample.
func (n *Notifier) Ready(status string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.ready = true
	n.lastStatus = status
	n.notify(daemon.SdNotifyReady + "\nSTATUS=" + oneLine(status))
}

// IsReady reports whether Ready has been called.
func (n *Notifier) IsReady() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ready
}

// Watchdog feeds the watchdog. Only the sampling loop calls it.
func (n *Notifier) Watchdog() {
	if n.watchdog == 0 {
		return
	}
	n.notify(daemon.SdNotifyWatchdog)
}

// Status sets the one-line status `systemctl status` shows; repeated
// identical lines are sent once.
func (n *Notifier) Status(status string) {
	status = oneLine(status)
	n.mu.Lock()
	defer n.mu.Unlock()
	if status == n.lastStatus {
		return
	}
	n.lastStatus = status
	n.notify("STATUS=" + status)
}

// Reloading announces a configuration reload; follow with Ready. The
// monotonic timestamp lets systemd >= 253 (Type=notify-reload) match the
// reload to the request; older versions ignore it.
func (n *Notifier) Reloading() {
	n.notify(daemon.SdNotifyReloading + "\n" + daemon.SdNotifyMonotonicUsec() + "\nSTATUS=reloading configuration")
}

// Stopping announces shutdown, with what the agent does while stopping.
func (n *Notifier) Stopping(status string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.lastStatus = oneLine(status)
	n.notify(daemon.SdNotifyStopping + "\nSTATUS=" + n.lastStatus)
}

// oneLine keeps a status to a single line: STATUS= ends at a newline.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// StatusLine renders the agent's state as the one-liner systemctl shows:
// "verifying net.core.somaxconn 4096->8192", "2 proposals pending",
// "healthy", ...
func StatusLine(st Status) string {
	var parts []string
	if st.Verifying != nil {
		v := st.Verifying
		parts = append(parts, fmt.Sprintf("verifying %s %s->%s", v.Key, v.Old, v.New))
	}
	switch n := len(st.Pending); n {
	case 0:
	case 1:
		parts = append(parts, "1 proposal pending")
	default:
		parts = append(parts, fmt.Sprintf("%d proposals pending", n))
	}
	if len(parts) == 0 {
		switch {
		case st.Unhealthy > 0:
			parts = append(parts, fmt.Sprintf("%d finding(s), no kernel change proposed", st.Unhealthy))
		case st.LastError != "":
			parts = append(parts, "sampling failing: "+st.LastError)
		case !st.Ready:
			// Nothing read yet: "healthy" would be a guess.
			parts = append(parts, "sampling (no sample yet)")
		case !st.Diagnosed:
			// The first full census (diagnose.samples apart) is
			// still being taken.
			parts = append(parts, "sampling (first diagnosis running)")
		default:
			parts = append(parts, "healthy")
		}
	}
	if f := st.Fleet; f != nil && !f.Reachable && !f.Since.IsZero() {
		parts = append([]string{"fleet store unreachable, nothing applied"}, parts...)
	}
	line := strings.Join(parts, "; ")
	if st.Mode != "" && st.Mode != "propose" {
		line += " (" + st.Mode + " mode)"
	}
	return line
}
