package remediate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestNetnsRestartUnitNspawn proves the unit restart for real: a systemd
// booted as PID 1 in a container (systemd-nspawn, private network, volatile
// overlay over the rootfs that packaging/test/nspawn-test.sh caches) runs a
// listener as swlab-app.service with somaxconn capping it. `sockwarden
// apply` with remediate.restart_unit and an approval given with
// --allow-restart raises somaxconn, restarts the unit over D-Bus, sees
// Send-Q rise and the overflows stop: verified.
func TestNetnsRestartUnitNspawn(t *testing.T) {
	needRoot(t)
	cache := os.Getenv("SWTEST_NSPAWN_CACHE")
	if cache == "" {
		cache = "/var/cache/sockwarden/nspawn"
	}
	rootfs := filepath.Join(cache, "bookworm")
	if _, err := os.Stat(filepath.Join(rootfs, "lib/systemd/systemd")); err != nil {
		t.Skipf("no cached container rootfs at %s (packaging/test/nspawn-test.sh builds it)", rootfs)
	}
	for _, tool := range []string{"systemd-nspawn", "nsenter", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	bin := buildSockwarden(t)

	ct := bootContainer(t, rootfs, fmt.Sprintf("swrs-%d", os.Getpid()))
	ct.put("/usr/local/bin/sockwarden", "0755", mustRead(t, bin))
	ct.run("sh", "-c", "echo 64 > /proc/sys/net/core/somaxconn") // the container's own namespace
	spec := `{"role":"listen","comm":"restart-app","addr":"127.0.0.1:8090","deadline":"2099-01-01T00:00:00Z",` +
		`"backlog":4096,"drain_every":100000000,"burst":96,"burst_every":500000000,"dial_timeout":300000000,"hold":200000000}`
	ct.put("/etc/swlab.env", "0644", []byte("SOCKWARDEN_LAB_CHILD='"+spec+"'\n"))
	ct.put("/etc/systemd/system/swlab-app.service", "0644", []byte(
		"[Unit]\nDescription=sockwarden test listener\n[Service]\nEnvironmentFile=/etc/swlab.env\nExecStart=/usr/local/bin/sockwarden\n"))
	ct.run("systemctl", "daemon-reload")
	ct.run("systemctl", "start", "--no-block", "swlab-app.service")
	ct.waitFor(20*time.Second, "swlab-app active", func() bool {
		return strings.TrimSpace(ct.out("systemctl", "is-active", "swlab-app.service")) == "active"
	})
	pid1 := strings.TrimSpace(ct.out("systemctl", "show", "-P", "MainPID", "swlab-app.service"))

	common := []string{"--log-level", "warn"}
	var ps []Pending
	ct.waitFor(40*time.Second, "a somaxconn proposal", func() bool {
		out := ct.out(append([]string{"sockwarden", "propose", "-o", "json", "--samples", "3", "--interval", "1s"}, common...)...)
		var doc struct {
			Proposals []Pending `json:"proposals"`
		}
		json.Unmarshal([]byte(out), &doc)
		ps = doc.Proposals
		return len(ps) > 0 && ps[0].Proposal.Changes[0].Key == "net.core.somaxconn"
	})
	id := ps[0].Proposal.ID
	want := ps[0].Proposal.Changes[0].Proposed
	ct.run(append([]string{"sockwarden", "approve", id, "--allow-restart"}, common...)...)

	var stdout, stderr bytes.Buffer
	cmd := ct.cmd(append([]string{"env", "SOCKWARDEN_REMEDIATE_RESTART_UNIT=true", "sockwarden", "apply", id,
		"-o", "json", "--interval", "2s", "--verify-window", "12s"}, common...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Logf("apply stderr:\n%s", stderr.String())
	var o Outcome
	if jerr := json.Unmarshal(stdout.Bytes(), &o); jerr != nil {
		t.Fatalf("apply: %v; stdout %q", jerr, stdout.String())
	}
	if err != nil || o.State != StateVerified {
		t.Fatalf("apply: %v, outcome %s: %s", err, o.State, o.Reason)
	}
	if !strings.Contains(stderr.String(), "restarted swlab-app.service") {
		t.Fatal("no unit restart reported on stderr")
	}
	pid2 := strings.TrimSpace(ct.out("systemctl", "show", "-P", "MainPID", "swlab-app.service"))
	if pid2 == pid1 || pid2 == "0" {
		t.Fatalf("swlab-app MainPID %s -> %s: not restarted", pid1, pid2)
	}
	if got := strings.TrimSpace(ct.out("cat", "/proc/sys/net/core/somaxconn")); got != want {
		t.Fatalf("somaxconn in the container %s, want %s", got, want)
	}
	ss := ct.out("ss", "-Htln", "sport = :8090")
	if f := strings.Fields(ss); len(f) < 3 || f[2] != want {
		t.Fatalf("ss in the container: %q, want Send-Q %s", ss, want)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type container struct {
	t      *testing.T
	leader int
}

// bootContainer boots systemd in a container as SYSTEMD-NOTES.md describes,
// from a cgroup of its own, and stops and cleans it up when the test ends.
func bootContainer(t *testing.T, rootfs, name string) *container {
	t.Helper()
	cg := ""
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		cg = "/sys/fs/cgroup/" + name
	} else if _, err := os.Stat("/sys/fs/cgroup/systemd"); err == nil {
		cg = "/sys/fs/cgroup/systemd/" + name
	}
	script := `exec systemd-nspawn -D "$1" --machine="$2" --register=no --keep-unit --volatile=overlay --private-network --console=read-only -q --boot`
	if cg != "" {
		if err := os.MkdirAll(cg, 0o755); err != nil {
			t.Fatal(err)
		}
		script = `echo $$ > "$3/cgroup.procs" && ` + script
	}
	var console bytes.Buffer
	cmd := exec.Command("sh", "-c", script, "sh", rootfs, name, cg)
	cmd.Stdout, cmd.Stderr = &console, &console
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		exec.Command("kill", "-TERM", strconv.Itoa(cmd.Process.Pid)).Run()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		os.RemoveAll("/run/systemd/nspawn/propagate/" + name)
		if cg != "" {
			exec.Command("find", cg, "-depth", "-type", "d", "-exec", "rmdir", "{}", "+").Run()
		}
	})
	c := &container{t: t}
	deadline := time.Now().Add(15 * time.Second)
	for c.leader == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		out, _ := exec.Command("pgrep", "-P", strconv.Itoa(cmd.Process.Pid)).Output()
		for _, f := range strings.Fields(string(out)) {
			if comm, _ := os.ReadFile("/proc/" + f + "/comm"); strings.TrimSpace(string(comm)) == "systemd" {
				c.leader, _ = strconv.Atoi(f)
			}
		}
	}
	if c.leader == 0 {
		t.Fatalf("container did not start:\n%s", console.String())
	}
	c.waitFor(30*time.Second, "systemd running", func() bool {
		s := strings.TrimSpace(c.out("systemctl", "is-system-running"))
		return s == "running" || s == "degraded"
	})
	return c
}

func (c *container) cmd(args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"-t", strconv.Itoa(c.leader), "-a", "--"}, args...)...)
}

// out runs a command in the container and returns its stdout, errors
// ignored (callers check the output).
func (c *container) out(args ...string) string {
	b, _ := c.cmd(args...).Output()
	return string(b)
}

func (c *container) run(args ...string) {
	c.t.Helper()
	if b, err := c.cmd(args...).CombinedOutput(); err != nil {
		c.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, b)
	}
}

func (c *container) put(path, mode string, data []byte) {
	c.t.Helper()
	cmd := c.cmd("sh", "-c", `cat > "$1" && chmod "$2" "$1"`, "sh", path, mode)
	cmd.Stdin = bytes.NewReader(data)
	if b, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("put %s: %v\n%s", path, err, b)
	}
}

func (c *container) waitFor(d time.Duration, what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
