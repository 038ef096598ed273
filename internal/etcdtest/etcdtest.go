// Package etcdtest starts a real, single-member etcd server for tests: on
// loopback, on free ports, with a data directory of the test's own, killed
// when the test ends. Tests of the fleet store use it instead of mocks.
//
// Without an etcd binary on PATH (Debian: apt-get install etcd-server) the
// test is skipped with a reason, unless CI is set: then it fails, so that a
// CI machine missing the package cannot pass by skipping.
//
// StartTLS starts one that serves clients over TLS only and requires a
// client certificate, as production clusters do; its certificates come
// from a throwaway CA in the test's temporary directory (NewTLSFiles).
package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Server is one running etcd.
type Server struct {
	// Endpoint is its client URL (http://127.0.0.1:PORT).
	Endpoint string
	// DataDir is its data directory (kept across Stop and Start).
	DataDir string
	// TLS names the PEM files of a server from StartTLS (nil otherwise):
	// the CA it trusts, its own pair, and a client pair it accepts.
	TLS *TLSFiles

	t      testing.TB
	bin    string
	name   string
	peer   string
	health *http.Client
	mu     sync.Mutex // guards cmd and exited
	cmd    *exec.Cmd
	exited chan struct{}
	logMu  sync.Mutex
	logs   strings.Builder
}

// Binary returns the etcd binary's path, skipping the test without one
// (failing it when CI is set).
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err == nil {
		return bin
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("no etcd binary on PATH (apt-get install etcd-server): the fleet store is tested against a real etcd, and CI=%s must not skip it", os.Getenv("CI"))
	}
	t.Skip("no etcd binary on PATH: apt-get install etcd-server (tests of the fleet store need a real etcd)")
	return ""
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Start runs a new etcd and waits until it answers /health. It is killed
// in t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	return startServer(t, nil)
}

// StartTLS runs a new etcd that serves clients on https://127.0.0.1:PORT
// only (--cert-file, --key-file, --trusted-ca-file) and refuses clients
// without a certificate signed by its CA (--client-cert-auth). The peer
// URL stays plain http: a single member has no peers. Server.TLS names
// the files; the CA and the keys are fresh for every server.
func StartTLS(t testing.TB) *Server {
	t.Helper()
	Binary(t)
	f := NewTLSFiles(t, t.TempDir())
	return startServer(t, &f)
}

func startServer(t testing.TB, tf *TLSFiles) *Server {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	scheme, health := "http://", http.DefaultClient
	if tf != nil {
		tc, err := tf.ClientTLS()
		if err != nil {
			t.Fatal(err)
		}
		scheme = "https://"
		health = &http.Client{Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}}
	}
	var lastErr error
	for try := 0; try < 3; try++ {
		client, err1 := freePort()
		peer, err2 := freePort()
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		s := &Server{t: t, bin: bin, Endpoint: scheme + client, peer: "http://" + peer, TLS: tf, health: health,
			DataDir: filepath.Join(dir, fmt.Sprintf("data-%d", try)), name: "sw-test"}
		if lastErr = s.start(); lastErr == nil {
			t.Cleanup(s.Kill)
			return s
		}
	}
	t.Fatalf("etcd did not start: %v", lastErr)
	return nil
}

func (s *Server) start() error {
	args := []string{
		"--name", s.name,
		"--data-dir", s.DataDir,
		"--listen-client-urls", s.Endpoint,
		"--advertise-client-urls", s.Endpoint,
		"--listen-peer-urls", s.peer,
		"--initial-advertise-peer-urls", s.peer,
		"--initial-cluster", s.name + "=" + s.peer,
		"--initial-cluster-state", "new",
		"--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn",
	}
	if s.TLS != nil {
		args = append(args, "--cert-file", s.TLS.ServerCert, "--key-file", s.TLS.ServerKey,
			"--client-cert-auth", "--trusted-ca-file", s.TLS.CA)
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout = &lockedWriter{b: &s.logs, mu: &s.logMu}
	cmd.Stderr = cmd.Stdout
	// Killed with the test binary too. Pdeathsig fires when the thread
	// that forked exits, not the process, and tests that enter network
	// namespaces end locked threads: so etcd is forked from a thread
	// locked for as long as etcd runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with etcd
		err := cmd.Start()
		started <- err
		if err == nil {
			cmd.Wait()
		}
		close(exited)
	}()
	if err := <-started; err != nil {
		return err
	}
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("etcd exited: %s", s.Logs())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint+"/health", nil)
		resp, err := s.health.Do(req)
		cancel()
		if err == nil {
			healthy := resp.StatusCode == http.StatusOK
			resp.Body.Close()
			if healthy {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Kill()
	return fmt.Errorf("etcd not healthy within 20s: %s", s.Logs())
}

// Kill stops etcd with SIGKILL, as a crash or a lost host would, and waits
// for it to exit. Calling it again is harmless.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-exited
}

// Restart starts etcd again on the same ports and data after Kill.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("etcd restart: %v", err)
	}
}

// Logs returns what etcd printed.
func (s *Server) Logs() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.logs.String()
}

type lockedWriter struct {
	b  *strings.Builder
	mu *sync.Mutex
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
