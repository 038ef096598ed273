package sample

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/mdlayher/netlink"

	"github.com/sockwarden/sockwarden/internal/netns"
)

// WatchListeners polls the listeners of opts.Netns (a LISTEN-only dump,
// filtered in the kernel) every `every` until ctx is done, and returns each
// listener's peak queue: accept-queue bursts last milliseconds and fall
// between two samples. It returns the watch when ctx ends; an error only if
// the namespace cannot be entered or a dump fails.
func WatchListeners(ctx context.Context, opts Options, every time.Duration) (*Watch, error) {
	if every <= 0 {
		every = 20 * time.Millisecond
	}
	var conn *netlink.Conn
	if err := netns.Do(opts.Netns, func() (err error) { conn, err = dialDiag(); return err }); err != nil {
		return nil, err
	}
	defer conn.Close()
	return watch(ctx, conn, every)
}

type peakState struct {
	ListenerPeak
	wasAtLimit bool
}

func watch(ctx context.Context, c diagConn, every time.Duration) (*Watch, error) {
	w := &Watch{Start: time.Now(), Interval: every}
	peaks := map[string]*peakState{}
	var seen []Listener
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		seen = seen[:0]
		err := dumpBoth(ctx, c, 1<<10, func(sk Socket) error {
			seen = append(seen, Listener{Local: FormatLocal(sk.Local, sk.V6Only), Port: sk.Local.Port(), RecvQ: sk.RecvQ, SendQ: sk.SendQ})
			return nil
		})
		if ctx.Err() != nil {
			break // a poll cut short by the end of the watch is not counted
		}
		if err != nil {
			return nil, err
		}
		w.Polls++
		for _, l := range seen {
			p := peaks[l.Local]
			if p == nil {
				p = &peakState{ListenerPeak: ListenerPeak{Local: l.Local, Port: l.Port}}
				peaks[l.Local] = p
			}
			p.observe(l.RecvQ, l.SendQ)
		}
		select {
		case <-ctx.Done():
		case <-t.C:
			continue
		}
		break
	}
	w.End = time.Now()
	w.Peaks = make([]ListenerPeak, 0, len(peaks))
	for _, p := range peaks {
		w.Peaks = append(w.Peaks, p.ListenerPeak)
	}
	slices.SortFunc(w.Peaks, func(a, b ListenerPeak) int {
		return cmp.Or(cmp.Compare(a.Port, b.Port), cmp.Compare(a.Local, b.Local))
	})
	return w, nil
}

// observe records one poll of a listener. The queue is at its limit when
// it holds SendQ or more connections (the kernel lets it reach SendQ+1).
func (p *peakState) observe(recvQ, sendQ uint32) {
	p.Polls++
	p.SendQ = sendQ
	p.PeakRecvQ = max(p.PeakRecvQ, recvQ)
	if recvQ > 0 && recvQ >= sendQ {
		p.AtLimit++
		p.wasAtLimit = true
		return
	}
	if p.wasAtLimit && recvQ < sendQ/2 {
		p.Drained++
	}
}
