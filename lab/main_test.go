package lab

import (
	"flag"
	"os"
	"testing"
)

// TestMain lets the namespace tests run side by side: they mostly wait on
// the kernel and on timers, so go test's default of GOMAXPROCS parallel
// tests (2 here) would serialise them for nothing. An explicit -parallel
// wins.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", "16")
	}
	os.Exit(m.Run())
}
