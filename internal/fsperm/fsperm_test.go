package fsperm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestChain(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a directory to another user")
	}
	tests := []struct {
		name string
		make func(base string) string
		want string // "" = accepted
	}{
		{"plain", func(b string) string { return b }, ""},
		{"root's sticky 1777", func(b string) string {
			d := filepath.Join(b, "tmp")
			os.Mkdir(d, 0o755)
			os.Chmod(d, os.ModeSticky|0o777)
			return filepath.Join(d, "x")
		}, ""},
		{"another user's sticky 1777", func(b string) string {
			d := filepath.Join(b, "tmp")
			os.Mkdir(d, 0o755)
			os.Chmod(d, os.ModeSticky|0o777)
			os.Chown(d, 12345, 12345)
			return d
		}, "is owned by uid 12345"},
		{"0757", func(b string) string {
			d := filepath.Join(b, "o")
			os.Mkdir(d, 0o755)
			os.Chmod(d, 0o757)
			return filepath.Join(d, "x")
		}, "has mode 0757"},
		{"symlink to an open directory", func(b string) string {
			d := filepath.Join(b, "o")
			os.Mkdir(d, 0o755)
			os.Chmod(d, 0o777)
			os.Symlink(d, filepath.Join(b, "l"))
			return filepath.Join(b, "l")
		}, "has mode 0777"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.make(t.TempDir())
			os.MkdirAll(p, 0o755)
			err := Chain(p)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Chain(%s) = %v, want %q", p, err, tt.want)
			}
		})
	}
}
