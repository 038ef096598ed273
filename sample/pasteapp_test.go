package sample

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestPasteFDErrors: the lines of calls failing with EMFILE or ENFILE, as
// Go, nginx (glibc and musl), Java, Python and Node log them, with the
// listener a failed accept names. Prose about the error (even with
// "socket" or "accept" in it), and lines with "tokenfile" or
// "systemfile" (no errno name), are not taken.
func TestPasteFDErrors(t *testing.T) {
	text := `$ tail app.log
2018/04/12 07:32:43 http: Accept error: accept tcp 127.0.0.1:9980: accept4: too many open files; retrying in 1s
[WRN] http: Accept error: accept tcp [::]:8000: accept4: too many open files; retrying in 640ms
2019/01/01 10:00:00 [crit] 123#0: *5 accept4() failed (24: Too many open files) while accepting new connection on 0.0.0.0:443
2021/07/08 12:43:00 [crit] 15#15: accept4() failed (24: No file descriptors available)
java.net.SocketException: Too many open files
OSError: [Errno 24] Too many open files
Error: EMFILE: too many open files, open '/srv/app/data.json'
socket: Too many open files in system
we see too many open files every day
Our server keeps crashing with too many open files on the socket layer, any idea?
I raised ulimit -n because accept was returning too many open files, it did not help.
2024-01-01 12:00:00 INFO loaded tokenfile /etc/app/tokenfile for accept handler
2024-01-01 12:00:00 INFO reading systemfile /etc/app.conf from socket activation
2024/03/01 10:00:00 dial tcp 10.0.0.7:6379: socket: too many open files
`
	s := readPaste(t, text)[0]
	want := []FDError{
		{Errno: "EMFILE", Listener: "127.0.0.1:9980", Line: "2018/04/12 07:32:43 http: Accept error: accept tcp 127.0.0.1:9980: accept4: too many open files; retrying in 1s"},
		{Errno: "EMFILE", Listener: "[::]:8000", Line: "[WRN] http: Accept error: accept tcp [::]:8000: accept4: too many open files; retrying in 640ms"},
		{Errno: "EMFILE", Listener: "0.0.0.0:443", Line: "2019/01/01 10:00:00 [crit] 123#0: *5 accept4() failed (24: Too many open files) while accepting new connection on 0.0.0.0:443"},
		{Errno: "EMFILE", Line: "2021/07/08 12:43:00 [crit] 15#15: accept4() failed (24: No file descriptors available)"},
		{Errno: "EMFILE", Line: "java.net.SocketException: Too many open files"},
		{Errno: "EMFILE", Line: "OSError: [Errno 24] Too many open files"},
		{Errno: "EMFILE", Line: "Error: EMFILE: too many open files, open '/srv/app/data.json'"},
		{Errno: "ENFILE", Line: "socket: Too many open files in system"},
		{Errno: "EMFILE", Line: "2024/03/01 10:00:00 dial tcp 10.0.0.7:6379: socket: too many open files"},
	}
	if diff := cmp.Diff(want, s.FDErrors); diff != "" {
		t.Errorf("fd errors (-want +got):\n%s", diff)
	}
}
