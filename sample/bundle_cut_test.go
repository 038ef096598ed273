package sample

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFromBundleCutTar cuts a plain .tar before each member's header and
// inside its end-of-archive blocks (where archive/tar sees a clean end of
// file), and gzips each cut too: every cut must be an error. Before the
// end-of-archive check such a cut was read as a whole bundle with the rest
// missing (54 of 54 cuts accepted; 30 with the snapshot comparison alone).
func TestFromBundleCutTar(t *testing.T) {
	dir := t.TempDir()
	whole := filepath.Join(dir, "whole.tar")
	tarDir(t, "testdata/bundle/ns", whole, "", false)
	b, err := os.ReadFile(whole)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := FromBundle(whole); err != nil {
		t.Fatalf("whole archive: %v", err)
	}
	// Header offsets: tarDir writes one 512-byte ustar block per header.
	var cuts []int
	cr := &countingReader{r: bytes.NewReader(b)}
	tr := tar.NewReader(cr)
	for {
		if _, err := tr.Next(); err != nil {
			break
		}
		if off := int(cr.n) - 512; off > 0 {
			cuts = append(cuts, off)
		}
	}
	// Before the two zero blocks, and after the first of them.
	cuts = append(cuts, len(b)-1024, len(b)-512)
	accepted := 0
	for _, cut := range cuts {
		for _, gz := range []bool{false, true} {
			p := filepath.Join(dir, "cut.tar")
			data := b[:cut]
			if gz {
				p += ".gz"
				var buf bytes.Buffer
				zw := gzip.NewWriter(&buf)
				zw.Write(data)
				zw.Close()
				data = buf.Bytes()
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := FromBundle(p); err == nil {
				accepted++
				t.Errorf("cut at %d of %d bytes (gzip %v): accepted", cut, len(b), gz)
			} else if !errors.Is(err, ErrParse) {
				t.Errorf("cut at %d: %v, want ErrParse", cut, err)
			}
		}
	}
	if len(cuts) < 20 {
		t.Errorf("only %d cuts: the fixture has 26 members", len(cuts))
	}
	if accepted > 0 {
		t.Logf("%d of %d cuts accepted", accepted, 2*len(cuts))
	}
}

// TestFromBundleSnapshotLacksFile: a snapshot without a file that another
// snapshot has is an error in an archive (a cut or a partial copy), a
// Missing entry saying so in a directory, and nothing more when collect.txt
// says the file was not written.
func TestFromBundleSnapshotLacksFile(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, "testdata/bundle/ns", filepath.Join(dir, "b"))
	if err := os.Remove(filepath.Join(dir, "b", "2", "sysctl.txt")); err != nil {
		t.Fatal(err)
	}
	// A third snapshot lacking the same file: reported once, naming a
	// snapshot that has it.
	copyDir(t, filepath.Join(dir, "b", "2"), filepath.Join(dir, "b", "3"))
	tarball := filepath.Join(dir, "b.tar.gz")
	tarDir(t, filepath.Join(dir, "b"), tarball, "", true)
	_, err := FromBundle(tarball)
	if !errors.Is(err, ErrParse) || !strings.Contains(err.Error(), "2/sysctl.txt is absent but 1/sysctl.txt is there") ||
		!strings.Contains(err.Error(), "3/sysctl.txt is absent but 1/sysctl.txt is there") || strings.Count(err.Error(), "absent") != 2 {
		t.Errorf("archive: err = %v, want ErrParse naming 2/sysctl.txt and 3/sysctl.txt absent, 1/sysctl.txt there, once each", err)
	}

	got, err := FromBundle(filepath.Join(dir, "b"))
	if err != nil {
		t.Fatalf("directory: %v", err)
	}
	found := false
	for _, m := range got[1].Missing {
		found = found || (m.Source == "2/sysctl.txt" && strings.Contains(m.Reason, "1/sysctl.txt") && strings.Contains(m.Reason, "cut"))
	}
	if !found {
		t.Errorf("directory: Missing = %v, want 2/sysctl.txt naming 1/sysctl.txt and a cut", got[1].Missing)
	}

	// collect.txt says why the file is absent: not a cut.
	for snap, how := range map[string]string{"1": "sysctl -a (0.01s)", "2": "sysctl -a: failed: exit status 1", "3": "sysctl -a: failed: exit status 1"} {
		if err := os.WriteFile(filepath.Join(dir, "b", snap, "collect.txt"), []byte("sysctl.txt     "+how+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tarDir(t, filepath.Join(dir, "b"), tarball, "", true)
	if _, err := FromBundle(tarball); err != nil {
		t.Errorf("archive whose collect.txt explains the absence: %v", err)
	}
}

// tarOf writes an archive of the named files (gzipped when gz).
func tarOf(t *testing.T, p string, gz bool, files map[string][]byte) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var w io.Writer = f
	var zw *gzip.Writer
	if gz {
		zw, _ = gzip.NewWriterLevel(f, gzip.BestSpeed)
		w = zw
	}
	tw := tar.NewWriter(w)
	for name, b := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFromBundleLimits: the decompressed size, the compression ratio and
// the size of one file are bounded, and going past a bound is an error, not
// a silent truncation.
func TestFromBundleLimits(t *testing.T) {
	dir := t.TempDir()
	date := []byte("1795479192.923360473\n")
	tan := []byte(readTestdata(t, "bundle", "ns", "1", "ss-tan.txt"))

	t.Run("total", func(t *testing.T) {
		p := filepath.Join(dir, "big.tar")
		tarOf(t, p, false, map[string][]byte{"date.txt": date, "ss-tan.txt": tan, "junk.bin": make([]byte, 2<<20)})
		if _, err := FromBundle(p); err != nil {
			t.Fatalf("default limits: %v", err)
		}
		_, err := FromBundleOptions(p, Options{BundleMaxBytes: 1 << 20})
		if !errors.Is(err, ErrParse) || !strings.Contains(err.Error(), "1048576") {
			t.Errorf("err = %v, want ErrParse naming the 1048576-byte bound", err)
		}
		d := filepath.Join(dir, "bigdir")
		os.Mkdir(d, 0o755)
		os.WriteFile(filepath.Join(d, "date.txt"), date, 0o644)
		os.WriteFile(filepath.Join(d, "ss-tan.txt"), tan, 0o644)
		_, err = FromBundleOptions(d, Options{BundleMaxBytes: int64(len(tan))})
		if !errors.Is(err, ErrParse) || !strings.Contains(err.Error(), "bundle holds more than") {
			t.Errorf("directory: err = %v, want ErrParse: bundle holds more than", err)
		}
	})

	t.Run("ratio", func(t *testing.T) {
		// 80 MiB of zeros gzip to about 80 KiB: a ratio no capture has
		// (real ones: 2 to 8, a synthetic ss -tanpe of 500,000 sockets 13).
		p := filepath.Join(dir, "bomb.tar.gz")
		tarOf(t, p, true, map[string][]byte{"date.txt": date, "ss-tan.txt": tan, "zeros.bin": make([]byte, 80<<20)})
		_, err := FromBundle(p)
		if !errors.Is(err, ErrParse) || !strings.Contains(err.Error(), "times its compressed size") {
			t.Errorf("err = %v, want ErrParse: times its compressed size", err)
		}
	})

	t.Run("file", func(t *testing.T) {
		p := filepath.Join(dir, "file.tar")
		tarOf(t, p, false, map[string][]byte{"date.txt": date, "ss-tan.txt": tan})
		_, err := FromBundleOptions(p, Options{bundleMaxFile: int64(len(tan) - 100)})
		if !errors.Is(err, ErrParse) || !strings.Contains(err.Error(), "ss-tan.txt") || !strings.Contains(err.Error(), "longer than") {
			t.Errorf("archive: err = %v, want ErrParse: ss-tan.txt longer than", err)
		}
		d := filepath.Join(dir, "filedir")
		os.Mkdir(d, 0o755)
		os.WriteFile(filepath.Join(d, "date.txt"), date, 0o644)
		os.WriteFile(filepath.Join(d, "ss-tan.txt"), tan, 0o644)
		_, err = FromBundleOptions(d, Options{bundleMaxFile: int64(len(tan) - 100)})
		if !errors.Is(err, ErrParse) || !strings.Contains(err.Error(), "ss-tan.txt") || !strings.Contains(err.Error(), "longer than") {
			t.Errorf("directory: err = %v, want ErrParse: ss-tan.txt longer than", err)
		}
	})
}

// TestFromBundleListenerBound: listeners are kept one by one, so their
// number is bounded (1 GiB of one LISTEN line took 7.3 GB before).
func TestFromBundleListenerBound(t *testing.T) {
	d := t.TempDir()
	os.WriteFile(filepath.Join(d, "date.txt"), []byte("1795479192\n"), 0o644)
	tan := readTestdata(t, "bundle", "ns", "1", "ss-tan.txt")
	n := strings.Count(tan, "\nLISTEN")
	if n < 2 {
		t.Fatalf("fixture has %d listeners", n)
	}
	for _, f := range []string{"ss-tan.txt", "ss-tlnp.txt"} {
		os.WriteFile(filepath.Join(d, f), []byte(tan), 0o644)
	}
	if _, err := FromBundleOptions(d, Options{bundleMaxListeners: n}); err != nil {
		t.Fatalf("%d listeners, bound %d: %v", n, n, err)
	}
	_, err := FromBundleOptions(d, Options{bundleMaxListeners: n - 1})
	if !errors.Is(err, ErrParse) || !strings.Contains(err.Error(), "listening sockets") {
		t.Errorf("err = %v, want ErrParse: more than %d listening sockets", err, n-1)
	}
}
