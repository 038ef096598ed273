//go:build sockwarden_faultinject

package remediate

import (
	"os"
	"syscall"
)

// TEST-ONLY. This file is compiled only with -tags sockwarden_faultinject,
// which the fault-injection test (TestNetnsFaultInjection) uses to build its
// own sockwarden binary; release builds never carry it, so the variables
// below do nothing there.
//
// SWTEST_FAULT_KILL_AT=STEP makes the process SIGKILL itself at that
// durable step of an apply (see faultPoint calls and Journal.Append).
// SWTEST_FAULT_HOST_NETNS=PATH stands for PID 1's namespace, so that the
// persist step can be reached inside a throwaway namespace.

func faultPoint(step string) {
	if os.Getenv("SWTEST_FAULT_KILL_AT") == step {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
}

func testHostNetns() string { return os.Getenv("SWTEST_FAULT_HOST_NETNS") }
