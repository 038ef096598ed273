package sample

import "testing"

func TestParsePortSet(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		bad      bool
	}{
		{"", "", false},
		{"8080", "8080", false},
		{"8080,9000-9003, 9004,22", "22,8080,9000-9004", false},
		{"bogus,7", "7", true},
		{"0,5", "5", true},
		{"9-3,70000,65535", "65535", true},
	} {
		ps, err := ParsePortSet(tc.in)
		if got := ps.String(); got != tc.want {
			t.Errorf("ParsePortSet(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if (err != nil) != tc.bad {
			t.Errorf("ParsePortSet(%q) error = %v, want error %v", tc.in, err, tc.bad)
		}
	}
	if n := (PortSet{1: true, 5: true, 9: true}).CountIn(2, 9); n != 2 {
		t.Errorf("CountIn = %d, want 2", n)
	}
}
