//go:build !sockwarden_faultinject

package remediate

// faultPoint marks a durable step of an apply. Only a binary built with the
// sockwarden_faultinject tag (the fault-injection test's) can stop there;
// in every other build it does nothing and no setting reaches it.
func faultPoint(string) {}

// testHostNetns overrides HostNetns only in the fault-injection build.
func testHostNetns() string { return "" }
