package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCLIStdin is runCLI with stdin.
func runCLIStdin(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	return runCLIIn(t, strings.NewReader(stdin), args...)
}

const pasteTicket = `[root@web1 ~]# ss -tlnp
State  Recv-Q Send-Q Local Address:Port Peer Address:Port Process
LISTEN 0      4096   0.0.0.0:22         0.0.0.0:*         users:(("sshd",pid=812,fd=3))
LISTEN 129    128    0.0.0.0:8080       0.0.0.0:*         users:(("java",pid=1201,fd=45))
[root@web1 ~]# sysctl net.core.somaxconn
net.core.somaxconn = 4096
[root@web1 ~]# dmesg | tail -1
[ 524.253683] TCP: request_sock_TCP: Possible SYN flooding on port 8080. Sending cookies.  Check SNMP counters.
thanks
`

// `--from -` reads a paste on stdin, for sample (text and JSON) and
// diagnose (text, markdown, json), and says which block went where.
func TestPasteFromStdin(t *testing.T) {
	const read = "read: ss -tlnp (2 listeners), sysctl net.core.somaxconn (1 key), dmesg | tail -1 (1 line); ignored: 1 line"
	out, errOut, code := runCLIStdin(t, pasteTicket, "sample", "--from", "-")
	if code != exitOK || !strings.Contains(out, "\n"+read+"\n") || !strings.Contains(out, "(paste:stdin)") {
		t.Fatalf("sample --from -: exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
	js, _, code := runCLIStdin(t, pasteTicket, "sample", "-o", "json", "--from", "-")
	var s struct {
		Read         []struct{ Kind, What string }
		IgnoredLines int `json:"ignored_lines"`
		Listeners    []struct{ Local string }
	}
	if err := json.Unmarshal([]byte(js), &s); err != nil || code != exitOK {
		t.Fatalf("sample -o json --from -: exit %d, %v:\n%s", code, err, js)
	}
	if len(s.Read) != 3 || s.Read[0].Kind != "ss -tlnp" || s.IgnoredLines != 1 || len(s.Listeners) != 2 {
		t.Errorf("sample JSON: %+v", s)
	}
	for _, format := range []string{"text", "markdown", "json"} {
		out, errOut, code := runCLIStdin(t, pasteTicket, "diagnose", "--from", "-", "-o", format)
		if code != exitOK && code != exitFindings {
			t.Fatalf("diagnose -o %s: exit %d, stderr %q", format, code, errOut)
		}
		want := read
		switch format {
		case "markdown":
			want = strings.Replace(read, "read: ", "Read: ", 1)
		case "json":
			want = `"read": "` + read + `"`
		}
		if !strings.Contains(strings.Join(strings.Fields(out), " "), want) {
			t.Errorf("diagnose -o %s lacks %q:\n%s", format, want, out)
		}
		if !strings.Contains(errOut, "reading paste stdin") {
			t.Errorf("progress %q", errOut)
		}
	}
}

// A file that is no bundle is a paste; nothing usable is exit 2 naming it.
func TestPasteFileAndNothingUsable(t *testing.T) {
	dir := t.TempDir()
	ticket := filepath.Join(dir, "ticket-4711.txt")
	if err := os.WriteFile(ticket, []byte(pasteTicket), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCLI(t, "sample", "--from", ticket)
	if code != exitOK || !strings.Contains(out, "paste:"+ticket) {
		t.Fatalf("exit %d, stderr %q:\n%s", code, errOut, out)
	}
	prose := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(prose, []byte("the service is slow\nplease help\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"sample", "diagnose"} {
		_, errOut, code := runCLI(t, cmd, "--from", prose)
		if code != exitUsage || !strings.Contains(errOut, prose) || !strings.Contains(errOut, "nothing sockwarden reads") {
			t.Errorf("%s on prose: exit %d, stderr %q", cmd, code, errOut)
		}
	}
}
