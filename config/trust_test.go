package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestConfigFileTrust: a config file (or a directory above it) that group,
// others or another user may write is refused: it can grant standing
// approvals. Before the check every case below loaded.
func TestConfigFileTrust(t *testing.T) {
	const body = "remediate:\n  standing: [\"net.core.somaxconn<=16384\"]\n"
	tests := []struct {
		name string
		make func(t *testing.T) string
		want string // "" = loads
	}{
		{"0600 in a temp dir", func(t *testing.T) string { return write(t, body) }, ""},
		{"/dev/null (the defaults)", func(t *testing.T) string { return "/dev/null" }, ""},
		{"a fifo", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "fifo")
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Skip(err)
			}
			return p
		}, "is not a regular file"},
		{"0644", func(t *testing.T) string {
			p := write(t, body)
			os.Chmod(p, 0o644)
			return p
		}, ""},
		{"group-writable file", func(t *testing.T) string {
			p := write(t, body)
			os.Chmod(p, 0o664)
			return p
		}, "has mode 0664: group or others may write it"},
		{"world-writable file", func(t *testing.T) string {
			p := write(t, body)
			os.Chmod(p, 0o666)
			return p
		}, "has mode 0666"},
		{"world-writable directory", func(t *testing.T) string {
			p := write(t, body)
			os.Chmod(filepath.Dir(p), 0o777)
			return p
		}, "has mode 0777: group or others may replace what is under it"},
		{"world-writable directory above", func(t *testing.T) string {
			d := filepath.Join(t.TempDir(), "open", "etc")
			os.MkdirAll(d, 0o755)
			os.Chmod(filepath.Dir(d), 0o777)
			p := filepath.Join(d, "config.yaml")
			os.WriteFile(p, []byte(body), 0o600)
			return p
		}, "open has mode 0777"},
		{"symlink into a writable directory", func(t *testing.T) string {
			open := filepath.Join(t.TempDir(), "open")
			os.Mkdir(open, 0o755)
			os.Chmod(open, 0o777)
			target := filepath.Join(open, "config.yaml")
			os.WriteFile(target, []byte(body), 0o600)
			p := filepath.Join(t.TempDir(), "config.yaml")
			os.Symlink(target, p)
			return p
		}, "open has mode 0777"},
	}
	if os.Geteuid() == 0 {
		tests = append(tests, struct {
			name string
			make func(t *testing.T) string
			want string
		}{"owned by another user", func(t *testing.T) string {
			p := write(t, body)
			os.Chown(p, 12345, 12345)
			return p
		}, "is owned by uid 12345, not root"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.make(t)
			_, err := Load(Options{File: p, Env: []string{}})
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrConfig with %q", err, tt.want)
			}
		})
	}
}
