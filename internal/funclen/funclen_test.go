package funclen

import (
	"os"
	"path"
	"path/filepath"
	"testing"
)

// TestFunctionLength holds the packages of Enforced to MaxLines, but for
// the functions of Pending, which must still be long (else leave the list).
func TestFunctionLength(t *testing.T) {
	waiting := map[string]bool{}
	for _, pkg := range Enforced {
		long, err := Long(filepath.Join("..", "..", pkg), MaxLines)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range long {
			key := path.Base(pkg) + "." + f.Name
			if why, ok := Pending[key]; ok {
				waiting[key] = true
				t.Logf("%s: pending (%s)", f, why)
				continue
			}
			t.Errorf("%s (at most %d; split it)", f, MaxLines)
		}
	}
	for key := range Pending {
		if !waiting[key] {
			t.Errorf("%s fits in %d lines now (or is gone): remove it from Pending", key, MaxLines)
		}
	}
}

// TestLongFindsLong checks the counter on a file it must flag: a
// function of 82 lines and one of exactly 80.
func TestLongFindsLong(t *testing.T) {
	dir := t.TempDir()
	body := func(n int) string {
		s := ""
		for range n - 2 {
			s += "\t_ = 1\n"
		}
		return s
	}
	src := "package p\n\ntype T struct{}\n\nfunc (t *T) Long() {\n" + body(82) + "}\n\nfunc Fits() {\n" + body(80) + "}\n"
	if err := os.WriteFile(filepath.Join(dir, "p.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "p_test.go"), []byte("package p\n\nfunc TestX() {\n"+body(100)+"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	long, err := Long(dir, MaxLines)
	if err != nil {
		t.Fatal(err)
	}
	if len(long) != 1 || long[0].Name != "T.Long" || long[0].Lines != 82 {
		t.Errorf("got %v, want only T.Long at 82 lines", long)
	}
}
