package sample

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestParseProcesses(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		want      map[int]Owner
		wantNotes []Missing
	}{
		{
			// The /proc loop of README.md run in the namespace
			// swcap-p (testdata/README): the two processes owning
			// its sockets and three kernel threads (no descriptors).
			name: "capture",
			in:   readTestdata(t, "bundle", "procs", "1", "processes.txt"),
			want: map[int]Owner{
				10:    {PID: 10, Comm: "kworker/0:0H-events_highpri", FDLimit: 1024},
				13:    {PID: 13, Comm: "kworker/R-mm_percpu_wq", FDLimit: 1024},
				13602: {PID: 13602, Comm: "kworker/u8:0-events_unbound", FDLimit: 1024},
				7902:  {PID: 7902, Comm: "python3", FDs: 52, FDLimit: 64},
				7984:  {PID: 7984, Comm: "dual listener", FDs: 7, FDLimit: 20000},
			},
		},
		{
			name: "units, unlimited, unknowns, no header",
			in: "812 37 unlimited nginx.service nginx\n" +
				"813 - - session-3.scope bash\n" +
				"814\t9\t1024\tuser@0.service\tsystemd\n",
			want: map[int]Owner{
				812: {PID: 812, Comm: "nginx", Unit: "nginx.service", FDs: 37, FDLimit: unlimitedNofile},
				813: {PID: 813, Comm: "bash", Unit: "session-3.scope"},
				814: {PID: 814, Comm: "systemd", Unit: "user@0.service", FDs: 9, FDLimit: 1024},
			},
		},
		{
			// A process that exited while the loop read it: awk and
			// cat print nothing, the fields run short.
			name: "exited process, bad fields, duplicate",
			in: "PID FDS NOFILE UNIT COMM\n" +
				"1 12 1024 - init\n" +
				"4242 0  -\n" +
				"x 1 1 - a\n" +
				"5 1 1 nginx a\n" +
				"6 many 1 - a\n" +
				"1 13 1024 - init\n",
			want: map[int]Owner{1: {PID: 1, Comm: "init", FDs: 12, FDLimit: 1024}},
			wantNotes: []Missing{
				{Source: "p.txt:3", Reason: `line not understood (want 5 fields: PID FDS NOFILE UNIT COMM): "4242 0  -"`},
				{Source: "p.txt:4", Reason: `line not understood (PID is not a process id): "x 1 1 - a"`},
				{Source: "p.txt:5", Reason: `line not understood (UNIT is not a unit name (name.service, name.scope) or -): "5 1 1 nginx a"`},
				{Source: "p.txt:6", Reason: `line not understood (FDS is not a descriptor count): "6 many 1 - a"`},
				{Source: "p.txt:7", Reason: `line not understood (pid listed twice, the first line kept): "1 13 1024 - init"`},
			},
		},
		{name: "header alone: no socket owner", in: "PID FDS NOFILE UNIT COMM\n", want: map[int]Owner{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, notes, err := ParseProcesses(strings.NewReader(tt.in), "p.txt")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantNotes, notes); diff != "" {
				t.Errorf("notes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseProcessesErrors(t *testing.T) {
	capture := readTestdata(t, "bundle", "procs", "1", "processes.txt")
	tests := []struct{ name, in, want string }{
		{"empty", "", "p.txt: line 1: empty"},
		{"sysctl output", readTestdata(t, "bundle", "procs", "1", "sysctl.txt"), "p.txt: line 1: not a process list"},
		{"ss output", readTestdata(t, "bundle", "procs", "1", "ss-tan.txt"), "p.txt: line 1: not a process list"},
		{"truncated", capture[:len(capture)-5], "p.txt: line 6: file ends in the middle of a line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ParseProcesses(strings.NewReader(tt.in), "p.txt")
			if !errors.Is(err, ErrParse) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrParse containing %q", err, tt.want)
			}
		})
	}
}

// What collect writes reads back to the same owners.
func TestFormatProcessLine(t *testing.T) {
	in := []Owner{
		{PID: 7902, Comm: "python3", FDs: 52, FDLimit: 64},
		{PID: 7984, Comm: "dual listener", FDs: 7, FDLimit: 20000},
		{PID: 812, Comm: "nginx", Unit: "nginx.service", FDs: 37, FDLimit: unlimitedNofile},
		{PID: 9, Comm: "odd\nname"},
	}
	var b bytes.Buffer
	b.WriteString("PID FDS NOFILE UNIT COMM\n")
	for _, o := range in {
		formatProcessLine(&b, o)
	}
	got, notes, err := ParseProcesses(&b, "p.txt")
	if err != nil || notes != nil {
		t.Fatalf("%v %v", notes, err)
	}
	in[3].Comm = "odd?name"
	for _, o := range in {
		if diff := cmp.Diff(o, got[o.PID]); diff != "" {
			t.Errorf("pid %d (-wrote +read):\n%s", o.PID, diff)
		}
	}
}

// A bundle made with the hand commands, processes.txt included: every
// owner gets its descriptors and limit, and "owners" is not missing.
func TestFromBundleProcesses(t *testing.T) {
	got, err := FromBundle("testdata/bundle/procs")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d snapshots", len(got))
	}
	py := Owner{PID: 7902, Comm: "python3", FDs: 52, FDLimit: 64}
	dual := Owner{PID: 7984, Comm: "dual listener", FDs: 7, FDLimit: 20000}
	for i, s := range got {
		if diff := cmp.Diff([]Owner{py}, s.Listener("127.0.0.1:8090").Owners); diff != "" {
			t.Errorf("snapshot %d: owners of 127.0.0.1:8090 (-want +got):\n%s", i+1, diff)
		}
		if diff := cmp.Diff([]Owner{dual}, s.Listener("*:2222").Owners); diff != "" {
			t.Errorf("snapshot %d: owners of *:2222 (-want +got):\n%s", i+1, diff)
		}
		var procs []Owner
		for _, p := range s.Processes {
			procs = append(procs, p.Owner)
		}
		if diff := cmp.Diff([]Owner{py, dual}, procs); diff != "" {
			t.Errorf("snapshot %d: processes (-want +got):\n%s", i+1, diff)
		}
		for _, m := range s.Missing {
			if !strings.HasSuffix(m.Source, "sysctl.txt") { // tcp_mem: host-wide, not in a namespace
				t.Errorf("snapshot %d: missing %v", i+1, m)
			}
		}
	}

	// Without processes.txt: today's "owners" entry, and no counts.
	dir := t.TempDir()
	copyDir(t, "testdata/bundle/procs/1", dir)
	if err := os.Remove(filepath.Join(dir, "processes.txt")); err != nil {
		t.Fatal(err)
	}
	got, err = FromBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	if o := got[0].Processes[0].Owner; o.FDs != 0 || o.FDLimit != 0 || !hasMissing(got[0], "owners", "capture processes.txt") {
		t.Errorf("without processes.txt: owner %+v, missing %v", o, got[0].Missing)
	}

	// A line lost, and a pid reused (another command name): those
	// owners stay unknown and are listed.
	body := strings.ReplaceAll(readTestdata(t, "bundle", "procs", "1", "processes.txt"), "7984 7 20000 - dual listener\n", "")
	if err := os.WriteFile(filepath.Join(dir, "processes.txt"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err = FromBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	if o := got[0].Listener("*:2222").Owners[0]; o.FDs != 0 || !hasMissing(got[0], "processes.txt", "pid 7984 (dual listener)") || hasMissing(got[0], "owners", "") {
		t.Errorf("one line lost: owner %+v, missing %v", o, got[0].Missing)
	}
	body = strings.ReplaceAll(body, "- python3", "- bash")
	if err := os.WriteFile(filepath.Join(dir, "processes.txt"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err = FromBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	if o := got[0].Listener("127.0.0.1:8090").Owners[0]; o.FDs != 0 || !hasMissing(got[0], "owners", "pid 7902 (python3)") {
		t.Errorf("no owner matches: owner %+v, missing %v", o, got[0].Missing)
	}
}

func hasMissing(s *Sample, source, reason string) bool {
	return slices.ContainsFunc(s.Missing, func(m Missing) bool {
		return m.Source == source && strings.Contains(m.Reason, reason)
	})
}

func FuzzParseProcesses(f *testing.F) {
	addCaptureSeeds(f, readTestdata(f, "bundle", "procs", "1", "processes.txt"))
	f.Add([]byte("812 37 unlimited nginx.service nginx\n4242 0  -\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, _, err := ParseProcesses(bytes.NewReader(b), "f.txt")
		if err != nil {
			if !errors.Is(err, ErrParse) {
				t.Fatalf("error does not wrap ErrParse: %v", err)
			}
			return
		}
		// What was read writes back to the same line.
		for pid, o := range m {
			if o.PID != pid || o.PID <= 0 || o.Comm == "" || o.FDs < 0 || (o.Unit != "" && checkUnitName(o.Unit) != "") {
				t.Fatalf("bad owner %+v", o)
			}
			var w bytes.Buffer
			formatProcessLine(&w, o)
			line := w.String()
			back, _, err := ParseProcesses(&w, "back.txt")
			// Control characters in a name are written as '?'.
			want := o
			want.Comm = strings.Map(func(r rune) rune {
				if r < ' ' || r == 0x7f {
					return '?'
				}
				return r
			}, o.Comm)
			if !utf8.ValidString(o.Comm) {
				want.Comm = back[pid].Comm
			}
			if err != nil || !cmp.Equal(back[pid], want) {
				t.Fatalf("%+v wrote %q, read back %+v, %v", o, line, back[pid], err)
			}
		}
	})
}
