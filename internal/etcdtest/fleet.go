package etcdtest

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/sockwarden/sockwarden/config"
)

var prefixSeq atomic.Int64

// FleetConfig is a fleet section for s under a prefix of its own, so that
// tests sharing a server do not see each other's keys, with timeouts and a
// slot lease (2s, the shortest fleet.slot_ttl accepted) short enough for a
// test to wait them out. The fleet store's tests and the engine's share
// it, so both run against the same settings.
func (s *Server) FleetConfig() config.Fleet {
	f := config.Defaults().Fleet
	f.Etcd.Endpoints = []string{s.Endpoint}
	f.Etcd.Prefix = fmt.Sprintf("/sw-test-%d/", prefixSeq.Add(1))
	f.Etcd.RequestTimeout = 2 * time.Second
	f.Etcd.DialTimeout = 2 * time.Second
	f.SlotTTL = 2 * time.Second
	return f
}

// Open opens host's fleet store with open (fleet.OpenEtcdStore; remediate's
// tests reach it through a hook, as remediate may not import fleet): a
// client of its own, logging to the test, closed when the test ends.
func Open[S interface{ Close() error }](t testing.TB, open func(config.Fleet, string, *zap.Logger) (S, error), f config.Fleet, host string) S {
	t.Helper()
	s, err := open(f, host, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
