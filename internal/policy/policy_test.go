package policy

import (
	"errors"
	"strconv"
	"testing"

	"github.com/sockwarden/sockwarden/config"
)

func TestBounds(t *testing.T) {
	cfg := config.Defaults().Diagnose
	for _, tc := range []struct {
		key, v string
		ok     bool
	}{
		{KeySomaxconn, "64", false}, // the namespace-at-16 proposal of issue 9
		{KeySomaxconn, "128", true},
		{KeySomaxconn, "65535", true},
		{KeySomaxconn, "65536", false},
		{KeySynBacklog, "65536", true},
		{KeySynBacklog, "100", false},
		{KeySyncookies, "3", false},
		{KeyTwReuse, "2", true},
		{KeyPortRange, " 10000\t65535 ", true},
		{KeyPortRange, "40000 40000", false},
		{KeyPortRange, "0 100", false},
		{KeyReserved, "8080,40000-40050", true},
		{KeyReserved, "x", false},
		{"net.ipv4.other", "", false},
	} {
		err := Check(tc.key, tc.v, cfg)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrBounds)) {
			t.Errorf("Check(%s, %q) = %v, want ok %v", tc.key, tc.v, err, tc.ok)
		}
	}
}

// TestBoundsPolicyWithin: every value the sizing policies return passes
// Check, from any current value, under caps at their floor or above.
func TestBoundsPolicyWithin(t *testing.T) {
	for _, somaxCap := range []int{128, 5000, 65535} {
		for _, synCap := range []int{128, 65536} {
			cfg := config.Defaults().Diagnose
			cfg.SomaxconnCap, cfg.SynBacklogCap = somaxCap, synCap
			for _, cur := range []int64{0, 1, 16, 64, 127, 128, 4096, 65535, 100000} {
				for _, demand := range []int64{0, 10, 5000, 1 << 20} {
					if v, ok := Somaxconn(cur, demand, cfg); ok {
						if err := Check(KeySomaxconn, itoa(v), cfg); err != nil || v <= cur {
							t.Errorf("Somaxconn(%d, %d) cap %d = %d: %v", cur, demand, somaxCap, v, err)
						}
					}
					if v, ok := SynBacklog(cur, demand, cfg); ok {
						if err := Check(KeySynBacklog, itoa(v), cfg); err != nil || v <= cur {
							t.Errorf("SynBacklog(%d, %d) cap %d = %d: %v", cur, demand, synCap, v, err)
						}
					}
				}
			}
		}
	}
	if v, ok := Somaxconn(16, 20, config.Defaults().Diagnose); !ok || v != 128 {
		t.Errorf("Somaxconn(16, 20) = %d %v, want 128 (the guard's floor)", v, ok)
	}
}

func TestNearSynBacklogDrop(t *testing.T) {
	for _, tc := range []struct {
		synRecv, max int64
		want         bool
	}{{700, 1024, true}, {692, 1024, true}, {691, 1024, false}, {200, 1024, false}, {10, 0, false}} {
		if got := NearSynBacklogDrop(tc.synRecv, tc.max); got != tc.want {
			t.Errorf("NearSynBacklogDrop(%d, %d) = %v", tc.synRecv, tc.max, got)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
