package sysval

import "testing"

func TestFold(t *testing.T) {
	for in, want := range map[string]string{
		"4096\n":         "4096",
		"32768\t60999\n": "32768 60999",
		"  1  2\t\t3 \n": "1 2 3",
		"\n":             "",
		"8080,9000-9010": "8080,9000-9010",
	} {
		if got := Fold(in); got != want {
			t.Errorf("Fold(%q) = %q, want %q", in, got, want)
		}
	}
}
