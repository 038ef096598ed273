package sample

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOwnerScanPtraceDenied: a process whose /proc/PID/fd lists but whose
// links the kernel refuses (its ptrace check: here a non-dumpable process
// read by a root without CAP_SYS_PTRACE, as under a unit that does not
// grant it) is reported as denied, by pid and command, not taken for a
// process without sockets. Two children of this test binary: the holder
// (non-dumpable, listening on 127.0.0.1) and the scanner (root, its
// bounding set without CAP_SYS_PTRACE).
func TestOwnerScanPtraceDenied(t *testing.T) {
	switch {
	case os.Getenv("SW_NODUMP_HOLDER") == "1":
		nodumpHolder()
		return
	case os.Getenv("SW_NOPTRACE_SCAN") != "":
		noptraceScan(os.Getenv("SW_NOPTRACE_SCAN"))
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: the scanner is root without CAP_SYS_PTRACE")
	}
	holder := exec.Command(os.Args[0], "-test.run", "^TestOwnerScanPtraceDenied$")
	holder.Env = append(os.Environ(), "SW_NODUMP_HOLDER=1")
	in, err := holder.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); holder.Wait() })
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || !strings.HasPrefix(line, "ready") {
		t.Fatalf("holder: %q, %v", line, err)
	}

	scan := exec.Command(os.Args[0], "-test.run", "^TestOwnerScanPtraceDenied$")
	scan.Env = append(os.Environ(), "SW_NOPTRACE_SCAN="+strconv.Itoa(holder.Process.Pid))
	b, err := scan.CombinedOutput()
	got := string(b)
	if strings.Contains(got, "SKIP:") {
		t.Skip(got[strings.Index(got, "SKIP:"):])
	}
	if err != nil {
		t.Fatalf("scanner: %v\n%s", err, got)
	}
	want := fmt.Sprintf("permission denied reading /proc/PID/fd of 1 process, pid %d (sample.test): its sockets show no owner", holder.Process.Pid)
	if !strings.Contains(got, "MISSING process owners: "+want) || !strings.Contains(got, "CAP_SYS_PTRACE") {
		t.Errorf("scanner said:\n%s\nwant the process owners missing: %s ... CAP_SYS_PTRACE", got, want)
	}
}

// nodumpHolder makes itself non-dumpable (its /proc/PID/fd links then
// need CAP_SYS_PTRACE), listens on 127.0.0.1, says "ready" and waits for
// its stdin to close.
func nodumpHolder() {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	defer ln.Close()
	fmt.Println("ready")
	os.Stdin.Read(make([]byte, 1))
}

// noptraceScan runs in two steps: first, holding CAP_SYS_PTRACE, it
// drops it from its bounding set and executes itself again, so that the
// new image (root: permitted = bounding set) runs without it; then it
// scans the holder and prints what the scan reports missing.
func noptraceScan(pid string) {
	if os.Getenv("SW_NOPTRACE_DROPPED") == "" {
		runtime.LockOSThread() // the bounding set is per thread; exec from this one
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, unix.CAP_SYS_PTRACE, 0, 0, 0); err != nil {
			fmt.Println("SKIP: cannot drop CAP_SYS_PTRACE:", err)
			return
		}
		err := syscall.Exec(os.Args[0], os.Args, append(os.Environ(), "SW_NOPTRACE_DROPPED=1"))
		fmt.Println("ERR exec:", err)
		os.Exit(1)
	}
	if _, err := os.Readlink("/proc/" + pid + "/fd/0"); err == nil {
		fmt.Println("SKIP: the kernel let a root without CAP_SYS_PTRACE read a non-dumpable process's descriptors")
		return
	}
	n, _ := strconv.Atoi(pid)
	_, _, miss, err := scanOwnersScoped("/proc", ownerScan{pids: []int{n}})
	if err != nil {
		fmt.Println("ERR scan:", err)
		os.Exit(1)
	}
	if miss != nil {
		fmt.Printf("MISSING %s: %s\n", miss.Source, miss.Reason)
	} else {
		fmt.Println("NOTHING MISSING")
	}
}

// TestDeniedReason: the missing-owners reason names the first three
// processes, counts the rest, and says what to do as root and not.
func TestDeniedReason(t *testing.T) {
	root := procTree(t, map[int]struct {
		comm, cgroup string
		fds          []string
	}{
		7: {"sshd", "0::/system.slice/ssh.service\n", nil},
	})
	for _, tc := range []struct {
		pids []int
		root bool
		want string
	}{
		{[]int{7}, false, "permission denied reading /proc/PID/fd of 1 process, pid 7 (sshd): its sockets show no owner (run as root)"},
		{[]int{9, 7, 8, 10, 11}, true, "permission denied reading /proc/PID/fd of 5 processes, pids 7 (sshd), 8, 9, 2 more: their sockets show no owner (refused to root too, by the kernel's ptrace check: a non-dumpable process, a security module, or CAP_SYS_PTRACE not granted)"},
	} {
		d := deniedPIDs{pids: tc.pids}
		if got := d.reason(root, tc.root); got != tc.want {
			t.Errorf("reason(%v, root %v):\n got %s\nwant %s", tc.pids, tc.root, got, tc.want)
		}
	}
}
