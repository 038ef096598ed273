package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// ErrControl wraps failures of the control socket, both sides.
var ErrControl = errors.New("control socket")

// ErrNotRoot is what a client that is not root gets.
var ErrNotRoot = errors.New("only root may use the control socket")

// Peer is the credentials the kernel reports for a control-socket client
// (SO_PEERCRED: fixed at connect(), not forgeable by the client).
type Peer struct{ PID, UID, GID int }

// RootOnly is the control socket's default policy.
func RootOnly(p Peer) bool { return p.UID == 0 }

// ControlServer answers `sockwarden status` on a Unix stream socket.
// Protocol: the client writes one request line ("status"), the server writes
// one JSON object and closes. A client that is not root gets
// {"error": "..."}.
type ControlServer struct {
	ln    *net.UnixListener
	path  string
	log   *zap.Logger
	state func() Status
	allow func(Peer) bool
	wg    sync.WaitGroup
}

// ListenControl creates the socket at path (mode 0600, its directory 0700
// when it has to create it), replacing a stale socket left by a crash.
// allow decides from the peer's credentials; nil means RootOnly.
func ListenControl(path string, log *zap.Logger, state func() Status, allow func(Peer) bool) (*ControlServer, error) {
	if allow == nil {
		allow = RootOnly
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrControl, err)
	}
	// A socket file left by a killed agent makes bind fail with
	// EADDRINUSE: remove it unless someone answers on it.
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%w: %s exists and is not a socket", ErrControl, path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%w: %s: another agent is listening", ErrControl, path)
		}
		os.Remove(path)
	}
	old := unix.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrControl, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("%w: %w", ErrControl, err)
	}
	return &ControlServer{ln: ln, path: path, log: log.Named("control"), state: state, allow: allow}, nil
}

// Path is where the socket lives.
func (s *ControlServer) Path() string { return s.path }

// Serve answers clients until ctx is done, then removes the socket.
func (s *ControlServer) Serve(ctx context.Context) {
	go func() {
		<-ctx.Done()
		s.ln.Close()
	}()
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				s.log.Warn("accept", zap.Error(err))
				continue
			}
			break
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(c)
		}()
	}
	s.wg.Wait()
}

type controlReply struct {
	Error  string  `json:"error,omitempty"`
	Status *Status `json:"status,omitempty"`
}

func (s *ControlServer) handle(c *net.UnixConn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	enc := json.NewEncoder(c)
	// Read the request before answering, even a refusal, so that the
	// client's write never meets a closed socket.
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return
	}
	peer, err := peerCred(c)
	if err != nil {
		s.log.Warn("peer credentials unreadable, refusing", zap.Error(err))
		_ = enc.Encode(controlReply{Error: "peer credentials unreadable"})
		return
	}
	if !s.allow(peer) {
		s.log.Warn("refused control client", zap.Int("pid", peer.PID), zap.Int("uid", peer.UID))
		_ = enc.Encode(controlReply{Error: ErrNotRoot.Error()})
		return
	}
	switch req := strings.TrimSpace(line); req {
	case "status":
		st := s.state()
		_ = enc.Encode(controlReply{Status: &st})
	default:
		_ = enc.Encode(controlReply{Error: fmt.Sprintf("unknown request %q", req)})
	}
}

func peerCred(c *net.UnixConn) (Peer, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return Peer{}, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return Peer{}, err
	}
	if cerr != nil {
		return Peer{}, cerr
	}
	return Peer{PID: int(cred.Pid), UID: int(cred.Uid), GID: int(cred.Gid)}, nil
}

// QueryStatus asks the agent listening at path for its status.
func QueryStatus(ctx context.Context, path string) (Status, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ECONNREFUSED) {
			return Status{}, fmt.Errorf("%w: %s: no agent is running (%w)", ErrControl, path, err)
		}
		return Status{}, fmt.Errorf("%w: %w", ErrControl, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := c.Write([]byte("status\n")); err != nil {
		return Status{}, fmt.Errorf("%w: %w", ErrControl, err)
	}
	var r controlReply
	if err := json.NewDecoder(c).Decode(&r); err != nil {
		return Status{}, fmt.Errorf("%w: reading reply from %s: %w", ErrControl, path, err)
	}
	if r.Error != "" {
		if r.Error == ErrNotRoot.Error() {
			return Status{}, fmt.Errorf("%w: %w", ErrControl, ErrNotRoot)
		}
		return Status{}, fmt.Errorf("%w: agent says: %s", ErrControl, r.Error)
	}
	if r.Status == nil {
		return Status{}, fmt.Errorf("%w: empty reply from %s", ErrControl, path)
	}
	return *r.Status, nil
}
