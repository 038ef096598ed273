package diagnose

import (
	"fmt"
	"time"

	"github.com/sockwarden/sockwarden/config"
	"github.com/sockwarden/sockwarden/sample"
)

// Hand-built samples for the rule tests. Every sample starts as an idle
// 6.x-kernel namespace with the kernel's defaults; each test case mutates
// what its scenario needs.

var t0 = time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)

func base(i int) *sample.Sample {
	s := &sample.Sample{
		Schema: sample.Schema, Time: t0.Add(time.Duration(i) * 5 * time.Second),
		Host: "lab", Netns: "/run/netns/sw-test", Source: "live",
		States: sample.NewStates(),
		Counters: map[string]uint64{
			"TcpPassiveOpens": 1000, "TcpActiveOpens": 1000,
			cOverflows: 0, cDrops: 0, cReqQDrop: 0, cReqQCook: 0,
			cCookSent: 0, cCookRecv: 0, cCookFail: 0,
		},
		Sysctls: map[string]string{
			kSomaxconn: "4096", kSynBacklog: "1024", kSyncookies: "1",
			kPortRange: "32768 60999", kReserved: "", kUnpriv: "1024",
			kTwReuse: "2", kFinTimeout: "60", kMaxOrphans: "65536",
			kTCPMem: "94011 125350 188022", kFileNr: "2000 0 9223372036854775807",
		},
		Orphans: map[string]int{},
	}
	return s
}

// series builds n samples 5 s apart; mut(i, s) shapes sample i.
func series(n int, mut func(i int, s *sample.Sample)) []*sample.Sample {
	out := make([]*sample.Sample, n)
	for i := range out {
		s := base(i)
		if mut != nil {
			mut(i, s)
		}
		total := 0
		for _, v := range s.States {
			total += v
		}
		s.Total = total
		out[i] = s
	}
	return out
}

// load adds arrivals: rate new connections per second, both directions.
func load(s *sample.Sample, i int, passive, active uint64) {
	s.Counters["TcpPassiveOpens"] += uint64(i) * 5 * passive
	s.Counters["TcpActiveOpens"] += uint64(i) * 5 * active
}

// rise adds perSec*5 per interval to a counter, starting from start.
func rise(s *sample.Sample, i int, name string, start, perSec uint64) {
	s.Counters[name] = start + uint64(i)*5*perSec
}

func listener(local string, port uint16, recvQ, sendQ uint32, owner *sample.Owner) sample.Listener {
	l := sample.Listener{Local: local, Addr: local[:len(local)-len(fmt.Sprint(port))-1], Port: port, Family: "ipv4", RecvQ: recvQ, SendQ: sendQ}
	if owner != nil {
		l.Owners = []sample.Owner{*owner}
	}
	return l
}

func watch(peaks ...sample.ListenerPeak) *sample.Watch {
	return &sample.Watch{Start: t0, End: t0.Add(5 * time.Second), Polls: 250, Interval: 20 * time.Millisecond, Peaks: peaks}
}

var nginx = &sample.Owner{PID: 4242, Comm: "nginx", Unit: "nginx.service", FDs: 120, FDLimit: 1024}

func cfg() config.Diagnose { return config.Defaults().Diagnose }
