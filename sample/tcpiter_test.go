package sample

import (
	"cmp"
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sockwarden/sockwarden/internal/bpfiter"
	"github.com/sockwarden/sockwarden/internal/netns"
)

// TestNetnsTCPIterMatchesSockDiag reads the sockets of buildStates's
// namespace (every state, IPv4, IPv6 and v4-mapped, with and without a
// descriptor) through the BPF tcp iterator and through sock_diag: the
// same sockets, field for field, and the same census.
func TestNetnsTCPIterMatchesSockDiag(t *testing.T) {
	path, name := newTestNetns(t)
	if err := bpfiter.TCPAvailable(); err != nil {
		t.Skipf("BPF tcp iterator on this kernel: %v", err)
	}
	buildStates(t, path, name)
	sortSockets := func(s []Socket) {
		slices.SortFunc(s, func(a, b Socket) int {
			return cmp.Or(a.Local.Compare(b.Local), a.Remote.Compare(b.Remote), cmp.Compare(a.State, b.State))
		})
	}
	var viaDiag, viaIter []Socket
	for attempt := 1; ; attempt++ {
		quiesce(t, name)
		viaDiag, viaIter = nil, nil
		err := Dump(context.Background(), path, nil, func(sk Socket) error {
			if sk.State != StateListen {
				sk.RecvQ, sk.SendQ, sk.UID, sk.V6Only = 0, 0, 0, false
				viaDiag = append(viaDiag, sk)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		err = netns.Do(path, func() error {
			r, err := bpfiter.OpenTCP()
			if err != nil {
				return err
			}
			defer r.Close()
			return readTCPIter(r, func(st int, sk *Socket) {
				if sk.State != States[st-1] {
					t.Errorf("state %d given with %+v", st, sk)
				}
				viaIter = append(viaIter, *sk)
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		sortSockets(viaDiag)
		sortSockets(viaIter)
		if gocmp.Equal(viaDiag, viaIter, gocmp.Comparer(func(a, b Socket) bool { return a == b })) || attempt == 3 {
			break
		}
	}
	if d := gocmp.Diff(viaDiag, viaIter, gocmp.Comparer(func(a, b Socket) bool { return a == b })); d != "" {
		t.Errorf("sockets (-sock_diag +iterator):\n%s", d)
	}
	states := map[string]int{}
	for _, sk := range viaIter {
		states[sk.State+"/"+sk.Family]++
	}
	for _, want := range []string{"ESTAB/ipv4", "TIME-WAIT/ipv4", "CLOSE-WAIT/ipv6", "FIN-WAIT-2/ipv4", "FIN-WAIT-2/ipv6", "SYN-RECV/ipv4", "SYN-SENT/ipv4"} {
		if states[want] == 0 {
			t.Errorf("no %s socket read: %v", want, states)
		}
	}

	// The same census both ways.
	// The iteration is a descriptor of this process, owner of the sockets:
	// its FDs count is one more during the iterator's census.
	ignore := gocmp.Options{cmpopts.IgnoreFields(Sample{}, "Time", "Duration", "Counters", "Sockstat", "Kernel", "Sysctls", "Missing"),
		cmpopts.IgnoreFields(Owner{}, "FDs")}
	for attempt := 1; ; attempt++ {
		quiesce(t, name)
		opts := Options{Netns: path, Owners: true, kmsgPath: os.DevNull}
		opts.sockDiagOnly = true
		a, err := Take(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		opts.sockDiagOnly, opts.tcpIterAlways = false, true
		b, err := Take(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		d := gocmp.Diff(a, b, ignore)
		if d == "" {
			break
		}
		if attempt == 3 {
			t.Errorf("census (-sock_diag +iterator):\n%s", d)
			break
		}
	}
}

func TestUseTCPIter(t *testing.T) {
	many := Sockstat{TCPInUse: 15_000, TCP6InUse: 3_000, TCPTimeWait: 2_000}
	few := Sockstat{TCPInUse: 15_000, TCP6InUse: 3_000, TCPTimeWait: 1_999}
	shared := Sockstat{TCPInUse: 1_500, TCP6InUse: 300, TCPTimeWait: 200}
	under := Sockstat{TCPInUse: 1_500, TCP6InUse: 300, TCPTimeWait: 199}
	for _, c := range []struct {
		name      string
		opts      Options
		st        Sockstat
		ownersBPF bool
		want      bool
	}{
		{"20,000 sockets", Options{}, many, false, true},
		{"19,999 sockets", Options{}, few, false, false},
		{"2,000 sockets, owners by BPF", Options{}, shared, true, true},
		{"1,999 sockets, owners by BPF", Options{}, under, true, false},
		{"2,000 sockets, owners by /proc", Options{}, shared, false, false},
		{"owner_scan proc: no BPF", Options{OwnerScan: OwnerScanProc}, many, true, false},
		{"fixture /proc", Options{procRoot: "testdata"}, many, true, false},
		{"sock_diag forced", Options{sockDiagOnly: true}, many, true, false},
		{"iterator forced", Options{tcpIterAlways: true}, Sockstat{}, false, true},
	} {
		if got := c.opts.useTCPIter(c.st, c.ownersBPF); got != c.want {
			t.Errorf("%s: useTCPIter = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestReadTCPIterCancelled: a census whose context ends stops reading the
// iteration.
func TestReadTCPIterCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n := 0
	err := readTCPIter(ctxReader{ctx, strings.NewReader("never read")}, func(int, *Socket) { n++ })
	if !errors.Is(err, context.Canceled) || n != 0 {
		t.Errorf("cancelled: err = %v after %d sockets, want context.Canceled after none", err, n)
	}
}
