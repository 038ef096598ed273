package sample

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// readPaste reads an inline paste and fails the test on an error.
func readPaste(t *testing.T, text string) []*Sample {
	t.Helper()
	ss, err := FromPaste("t.txt", strings.NewReader(text), Options{})
	if err != nil {
		t.Fatalf("FromPaste: %v", err)
	}
	return ss
}

func readBlocks(ss []*Sample) []ReadBlock {
	var out []ReadBlock
	for _, s := range ss {
		out = append(out, s.Read...)
	}
	return out
}

// The splitter: where each block starts, what it was read as, what was
// ignored. The texts are shaped like real pastes (see testdata/README for
// the captures they follow).
func TestPasteSplit(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		want    []ReadBlock
		ignored int
	}{
		{
			name: "prompts of several shells",
			text: `[root@web1 ~]# ss -tlnp
State      Recv-Q Send-Q Local Address:Port   Peer Address:Port  Process
LISTEN     0      4096   0.0.0.0:22           0.0.0.0:*          users:(("sshd",pid=812,fd=3))
LISTEN     129    128    0.0.0.0:8080         0.0.0.0:*          users:(("java",pid=1201,fd=45))
root@web1:~# nstat -az TcpExtListenOverflows
#kernel
TcpExtListenOverflows           5321               0.0
user@web1:~$ sysctl net.core.somaxconn
net.core.somaxconn = 128
$ cat /proc/sys/net/ipv4/tcp_syncookies
1
`,
			want: []ReadBlock{
				{Kind: "ss -tlnp", Line: 2, Lines: 3, What: "2 listeners"},
				{Kind: "nstat -az TcpExtListenOverflows", Line: 6, Lines: 2, What: "1 counter"},
				{Kind: "sysctl net.core.somaxconn", Line: 9, Lines: 1, What: "1 key"},
				{Kind: "cat /proc/sys/net/ipv4/tcp_syncookies", Line: 11, Lines: 1, What: "1 key"},
			},
		},
		{
			name: "no prompts: blocks by shape, prose ignored",
			text: `Our service on :8080 stops answering. Output below.

State  Recv-Q Send-Q Local Address:Port Peer Address:Port Process
LISTEN 0      4096   0.0.0.0:22         0.0.0.0:*
LISTEN 129    128    0.0.0.0:8080       0.0.0.0:*
net.core.somaxconn = 128
net.ipv4.tcp_max_syn_backlog = 1024
Total: 180
TCP:   12 (estab 4, closed 1, orphaned 0, timewait 1)

Transport Total     IP        IPv6
TCP	  11        8         3
TcpExt: SyncookiesSent ListenOverflows ListenDrops
TcpExt: 0 5321 5321
[ 524.253683] TCP: request_sock_TCP: Possible SYN flooding on port 8080. Sending cookies.  Check SNMP counters.
sockets: used 180
TCP: inuse 8 orphan 0 tw 1 alloc 11 mem 2
thanks
`,
			want: []ReadBlock{
				{Kind: "ss", Line: 3, Lines: 3, What: "2 listeners"},
				{Kind: "sysctl", Line: 6, Lines: 2, What: "2 keys"},
				{Kind: "ss -s", Line: 8, Lines: 4, What: "totals"},
				{Kind: "/proc/net/netstat", Line: 13, Lines: 2, What: "3 counters"},
				{Kind: "dmesg", Line: 15, Lines: 1, What: "1 line"},
				{Kind: "/proc/net/sockstat", Line: 16, Lines: 2, What: "totals and TCP memory"},
			},
			ignored: 2,
		},
		{
			name: "the output decides: netstat's table under an ss prompt, quoted",
			text: `> $ ss -ltnp
 (Not all processes could be identified, non-owned process info
 will not be shown, you would have to be root to see it all.)
Active Internet connections (only servers)
Proto Recv-Q Send-Q Local Address           Foreign Address         State       PID/Program name
tcp     1025      0 0.0.0.0:50011           0.0.0.0:*               LISTEN      -
tcp6       0      0 :::22                   :::*                    LISTEN      -
`,
			want: []ReadBlock{{Kind: "netstat", Line: 2, Lines: 6, What: "2 listeners"}},
		},
		{
			name: "a command nothing reads is named with what to capture",
			text: `@ubuntu:~$ sudo ufw status
Status: active

To                         Action      From
8000                       ALLOW       Anywhere
@ubuntu:~$ netstat -ltn
Active Internet connections (only servers)
Proto Recv-Q Send-Q Local Address           Foreign Address         State
tcp        0      0 127.0.0.1:8000          0.0.0.0:*               LISTEN
`,
			want: []ReadBlock{
				{Kind: "sudo ufw status", Line: 2, Lines: 3, What: "not read: ufw is not a capture sockwarden reads (capture ss -tanpe, ss -tlnp, nstat -az, sysctl -a, dmesg)"},
				{Kind: "netstat -ltn", Line: 7, Lines: 3, What: "1 listener"},
			},
		},
		{
			name: "counts from pipelines",
			text: `# ss -tanp | grep CLOSE-WAIT | wc -l
26358
# ss | grep CLOSE | wc -l
479062
root@server [~]# netstat -natp | awk '{print $6}' | sort | uniq -c
     10 CLOSING
      1 established)
   1036 ESTABLISHED
      1 Foreign
  12248 TIME_WAIT
`,
			want: []ReadBlock{
				{Kind: "ss -tanp | grep CLOSE-WAIT | wc -l", Line: 2, Lines: 1, What: "26358 CLOSE-WAIT"},
				{Kind: "ss | grep CLOSE | wc -l", Line: 4, Lines: 1, What: "not read: the grep matches more than one state (or unix sockets too), so the count is of no one TCP state (capture ss -tanpe)"},
				{Kind: "netstat -natp | awk '{print $6}' | sort | uniq -c", Line: 6, Lines: 5, What: "state counts: 1036 ESTAB, 12248 TIME-WAIT, 10 CLOSING"},
			},
		},
		{
			name: "bare command lines and wrapped syslog",
			text: `netstat -s

Tcp:
    3764018530 active connections openings
    49707312 resets sent
TcpExt:
    5191585 times the listen queue of a socket overflowed
    5191585 SYNs to LISTEN sockets dropped
Feb 23 16:44:36 jobs kernel: [38775494.393661] nf_conntrack: table full,
dropping packet
Feb 23 16:44:36 jobs kernel: [38775494.494836] nf_conntrack: table full, dropping packet
`,
			want: []ReadBlock{
				{Kind: "netstat -s", Line: 3, Lines: 6, What: "9 counters"},
				{Kind: "syslog", Line: 9, Lines: 3, What: "2 lines, 1 wrapped onto a second line"},
			},
		},
		{
			// hiredis issue 58 (corpus 49): the poster's "..." around
			// the rows is neither output nor an ignored line.
			name: "the poster's ellipsis lines around a table are not output",
			text: `netstat -vatnl | grep 6399
...  
tcp        0      0 127.0.0.1:38690         127.0.0.1:6399          TIME_WAIT  
tcp        0      0 127.0.0.1:35986         127.0.0.1:6399          TIME_WAIT  
...
`,
			want: []ReadBlock{{Kind: "netstat -vatnl | grep 6399", Line: 3, Lines: 2, What: `2 sockets; partial: piped through grep 6399; rows cut by the poster ("...")`}},
		},
		{
			name: "a comment is not a prompt",
			text: `# Kernel sysctl configuration
# sysctl settings are defined through files in
net.core.somaxconn = 4096
`,
			want:    []ReadBlock{{Kind: "sysctl", Line: 3, Lines: 1, What: "1 key"}},
			ignored: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ss := readPaste(t, tt.text)
			if diff := cmp.Diff(tt.want, readBlocks(ss)); diff != "" {
				t.Errorf("read (-want +got):\n%s", diff)
			}
			got := 0
			for _, s := range ss {
				got += s.IgnoredLines
			}
			if got != tt.ignored {
				t.Errorf("ignored lines = %d, want %d", got, tt.ignored)
			}
		})
	}
}

// What each block gives the sample: the census of ss and netstat tables,
// counters of netstat -s, sysctls from prompts, kernel lines.
func TestPasteSample(t *testing.T) {
	type lst struct {
		Local        string
		RecvQ, SendQ uint32
		LimitUnknown bool
		Owner        string
	}
	listeners := func(s *Sample) []lst {
		var out []lst
		for _, l := range s.Listeners {
			o := ""
			if len(l.Owners) > 0 {
				o = l.Owners[0].Comm
			}
			out = append(out, lst{l.Local, l.RecvQ, l.SendQ, l.LimitUnknown, o})
		}
		return out
	}
	tests := []struct {
		name      string
		text      string
		states    map[string]int // non-zero states
		listeners []lst
		counters  map[string]uint64
		sysctls   map[string]string
		kernel    []string // kinds
		missing   []string // substrings of Missing reasons that must be there
		// notMissing: substrings no Missing reason may hold.
		notMissing []string
	}{
		{
			// fastnetmon issue 685 (corpus 52): the poster cut the
			// table; "no listening sockets" would rest on rows not
			// pasted.
			name: "a table the poster cut with an ellipsis line is partial",
			text: `> tcp        0      0 11.1.1.1:52736          11.1.1.4:6379           TIME_WAIT   
> tcp        0      0 11.1.1.1:40652          11.1.1.2:2003           TIME_WAIT   
> .....
`,
			states:  map[string]int{StateTimeWait: 2},
			missing: []string{`only part of the socket table (rows cut by the poster ("..."))`, "listeners unknown"},
		},
		{
			// proxygen issue 265 (corpus 46): the grep kept the
			// listener row, so the listener shown was read and only
			// the others are unknown; "listeners unknown" under
			// "1 listener; the fullest is ..." contradicted it.
			name: "a grepped table with a listener row reads that listener",
			text: `~# netstat -anlp | grep 8090
tcp        0      0 10.165.181.1:8090       0.0.0.0:*               LISTEN      23576/server
tcp        0      0 10.165.181.1:8090       10.37.8.47:58926        SYN_RECV    -
`,
			states:     map[string]int{StateListen: 1, StateSynRecv: 1},
			listeners:  []lst{{"10.165.181.1:8090", 0, 0, true, "server"}},
			missing:    []string{"listeners: listeners on ports other than 8090 not read: the socket tables pasted are filtered by port (piped through grep 8090)"},
			notMissing: []string{"listeners unknown"},
		},
		{
			// ardb issue 74 (corpus 48): the awk pipeline counted
			// 49589 TIME_WAIT, so "states other than LISTEN unknown"
			// said that what was read was not.
			name: "states counted by a pipeline beside a listener table are read",
			text: `[root@TJHY-5T-207 ardb]# netstat -nap | grep ardb 
tcp        0      0 192.168.1.207:16379         0.0.0.0:*                   LISTEN      44667/./ardb-server 
[root@TJHY-5T-207 ardb]# netstat -na | grep 16379 | awk '/^tcp/ {++state[$NF]} END {for(key in state) print key,"\t",state[key]}'
TIME_WAIT    49589
LISTEN   1
`,
			states:     map[string]int{StateTimeWait: 49589, StateListen: 1},
			listeners:  []lst{{"192.168.1.207:16379", 0, 0, true, "./ardb-server"}},
			missing:    []string{"ss-tan.txt: absent: no socket table with addresses (the states a pipeline counted are read, and named below): destinations and processes unknown (capture: ss -tanpe)", "state counts from a pipeline"},
			notMissing: []string{"states other than LISTEN"},
		},
		{
			name: "states counted by a pipeline alone are read, listeners not",
			text: `$ netstat -an | awk '/^tcp/ {print $6}' | sort | uniq -c
     41 TIME_WAIT
    710 CLOSE_WAIT
`,
			states:     map[string]int{StateTimeWait: 41, StateCloseWait: 710},
			missing:    []string{"ss-tan.txt: absent: no socket table with addresses (the states a pipeline counted are read, and named below): listeners, destinations and processes unknown (capture: ss -tanpe and ss -tlnp)"},
			notMissing: []string{"socket states, listeners"},
		},
		{
			name: "ss -tan state close-wait takes its state from the prompt",
			text: `$ ss -tlnp
State  Recv-Q Send-Q Local Address:Port Peer Address:Port Process
LISTEN 0      128    0.0.0.0:8080       0.0.0.0:*         users:(("java",pid=1201,fd=45))
$ ss -tanp state close-wait
Recv-Q Send-Q Local Address:Port Peer Address:Port Process
1      0      10.0.0.5:8080      10.0.0.9:51234    users:(("java",pid=1201,fd=50))
0      0      10.0.0.5:8080      10.0.0.9:51236    users:(("java",pid=1201,fd=51))
`,
			states:    map[string]int{StateCloseWait: 2, StateListen: 1},
			listeners: []lst{{"0.0.0.0:8080", 0, 128, false, "java"}},
			missing:   []string{"only part of the socket table (state CLOSE-WAIT)", "absent (and no netstat.txt/snmp.txt)"},
		},
		{
			// Without the fix the three named ports were lines not
			// understood, and --port 22 said nothing listens on 22.
			name: "netstat without -n: /etc/services names are read as ports",
			text: `# netstat -l
Aktive Internetverbindungen (Nur Server)
Proto Recv-Q Send-Q Local Address           Foreign Address         State
tcp        0      0 0.0.0.0:ssh             0.0.0.0:*               LISTEN
tcp6       0      0 [::]:32782              [::]:*                  LISTEN
tcp6       0      0 [::]:http               [::]:*                  LISTEN
`,
			states:    map[string]int{StateListen: 3},
			listeners: []lst{{"0.0.0.0:22", 0, 0, true, ""}, {"[::]:80", 0, 0, true, ""}, {"[::]:32782", 0, 0, true, ""}},
		},
		{
			// The awk idiom counts netstat's last column itself and
			// prints the state first; without the fix the paste was
			// refused as unreadable.
			name: "state counts printed state first by awk",
			text: `netstat -anl | grep 3000 | awk '/^tcp/ {t[$NF]++}END{for(state in t){print state, t[state]} }'

TIME_WAIT 41
CLOSE_WAIT 710
LISTEN 1
`,
			states: map[string]int{StateTimeWait: 41, StateCloseWait: 710, StateListen: 1},
		},
		{
			name: "stateless rows without their prompt are of unknown state, not ESTAB",
			text: `Recv-Q Send-Q Local Address:Port Peer Address:Port
1      0      10.0.0.5:8080      10.0.0.9:51234
`,
			states:  map[string]int{},
			missing: []string{"their state is unknown and they are not counted", "absent: socket states"},
		},
		{
			name: "iproute2 3.x: *:22 is the IPv4 wildcard, :::22 IPv6",
			text: `[root@linux-node2 ~]# ss -ltn
State      Recv-Q Send-Q     Local Address:Port       Peer Address:Port
LISTEN     0      128                    *:22                    *:*
LISTEN     0      128                   :::22                   :::*
`,
			states:    map[string]int{StateListen: 2},
			listeners: []lst{{"*:22", 0, 128, false, ""}, {"0.0.0.0:22", 0, 128, false, ""}},
		},
		{
			name: "iproute2 6.x: *:22 is a dual-stack socket",
			text: `State  Recv-Q Send-Q Local Address:Port Peer Address:Port Process
LISTEN 0      4096   0.0.0.0:80         0.0.0.0:*
LISTEN 0      4096         *:22               *:*
`,
			states:    map[string]int{StateListen: 2},
			listeners: []lst{{"*:22", 0, 4096, false, ""}, {"0.0.0.0:80", 0, 4096, false, ""}},
		},
		{
			name: "a cut listener line under a sport filter keeps the filter's port",
			text: `$ ss -ltnup 'sport = :443'
Netid   State    Recv-Q   Send-Q
tcp     LISTEN   0        80000
tcp     LISTEN   80001    80000
`,
			states:    map[string]int{StateListen: 2},
			listeners: []lst{{"*:443", 0, 80000, false, ""}, {"*:443", 80001, 80000, false, ""}},
			missing:   []string{"port 443 taken from the filter"},
		},
		{
			name: "net-tools netstat: owners from PID/Program, Send-Q of listeners unknown",
			text: `root@MusicBox:~# netstat -tulpena
Active Internet connections (servers and established)
Proto Recv-Q Send-Q Local Address           Foreign Address         State       User       Inode       PID/Program name
tcp        0      0 0.0.0.0:22              0.0.0.0:*               LISTEN      0          9865        2959/dropbear
tcp      101      0 0.0.0.0:80              0.0.0.0:*               LISTEN      0          9866        1/java
tcp        0    268 192.168.1.33:22         192.168.1.50:55427      ESTABLISHED 0          10150       2996/dropbear
tcp        0      0 10.0.0.58:80            10.0.0.55:47529         TIME_WAIT   0          0           -
tcp        5      0 10.0.0.58:80            10.0.0.55:47530         CLOSE_WAIT  0          10151       1/java
udp        0      0 0.0.0.0:68              0.0.0.0:*                           0          9000        567/dhclient
`,
			states: map[string]int{StateListen: 2, StateEstab: 1, StateTimeWait: 1, StateCloseWait: 1},
			listeners: []lst{
				{"0.0.0.0:22", 0, 0, true, "dropbear"},
				{"0.0.0.0:80", 101, 0, true, "java"},
			},
			missing: []string{"netstat's Send-Q on a listener is 0", "netstat gives no fd limits"},
		},
		{
			name: "busybox netstat without PID column",
			text: `/ # netstat -tln
Active Internet connections (only servers)
Proto Recv-Q Send-Q Local Address           Foreign Address         State
tcp        3      0 0.0.0.0:80              0.0.0.0:*               LISTEN
tcp        0      0 :::22                   :::*                    LISTEN
`,
			states:    map[string]int{StateListen: 2},
			listeners: []lst{{"*:22", 0, 0, true, ""}, {"0.0.0.0:80", 3, 0, true, ""}},
			missing:   []string{"capture ss -tlnp instead of netstat -tuln for owners"},
		},
		{
			name: "netstat -s: prose to TcpExt, omitted zeros under a whole TcpExt section",
			text: `# netstat -s
Tcp:
    120 active connection openings
    34 passive connection openings
    3 failed connection attempts
TcpExt:
    12 times the listen queue of a socket overflowed
    12 SYNs to LISTEN sockets dropped
    TCPReqQFullDrop: 7
`,
			counters: map[string]uint64{
				"TcpActiveOpens": 120, "TcpPassiveOpens": 34, "TcpAttemptFails": 3,
				"TcpExtListenOverflows": 12, "TcpExtListenDrops": 12, "TcpExtTCPReqQFullDrop": 7,
				"TcpExtSyncookiesSent": 0, "TcpExtSyncookiesRecv": 0, "TcpExtSyncookiesFailed": 0,
				"TcpExtTCPAbortOnMemory": 0, "TcpExtEmbryonicRsts": 0,
			},
			states:  map[string]int{},
			missing: []string{"TCPReqQFullDoCookies and other counters without a line are unknown"},
		},
		{
			name: "netstat -s lines kept by grep: no zeros inferred",
			text: `$ netstat -s | grep -i listen
    3220 times the listen queue of a socket overflowed
    3220 SYNs to LISTEN sockets ignored
`,
			counters: map[string]uint64{"TcpExtListenOverflows": 3220, "TcpExtListenDrops": 3220},
			states:   map[string]int{},
		},
		{
			name: "sysctl values from cat and sysctl -n take their keys from the prompt",
			text: `#cat /proc/sys/net/ipv4/tcp_mem
21180   28243   42360
$ sysctl -n net.core.somaxconn net.ipv4.tcp_max_orphans
4096
65536
`,
			sysctls: map[string]string{"net.ipv4.tcp_mem": "21180 28243 42360", "net.core.somaxconn": "4096", "net.ipv4.tcp_max_orphans": "65536"},
			states:  map[string]int{},
		},
		{
			name: "dmesg -T: no zone, no time; wrapped and syslog lines count once",
			text: `[Tue Nov 20 22:30:22 2018] nf_conntrack: table full, dropping packet
Apr 20 22:03:02 kernel: TCP: too many orphaned sockets
kern.info kernel: [31617.809376] TCP: request_sock_TCP: Possible SYN flooding on port 5000. Sending
cookies.  Check SNMP counters.
`,
			kernel:  []string{KernelConntrackFull, KernelTooManyOrphans, KernelSynFlood},
			states:  map[string]int{},
			missing: []string{"the offset to UTC is unknown, so 1 kernel line is kept without a time"},
		},
		{
			name: "ss -tanpoe: timers, uid, inode and owners",
			text: `$ ss -tanpoe
State  Recv-Q Send-Q Local Address:Port Peer Address:Port Process
LISTEN 0      511    0.0.0.0:80         0.0.0.0:*         users:(("nginx",pid=900,fd=6)) ino:1234 sk:1 cgroup:/system.slice/nginx.service <->
ESTAB  0      0      10.0.0.5:80        10.0.0.9:51234    users:(("nginx",pid=901,fd=9)) timer:(keepalive,119min,0) uid:33 ino:5678 sk:2 <->
TIME-WAIT 0   0      10.0.0.5:80        10.0.0.9:51230    timer:(timewait,50sec,0) ino:0 sk:3
`,
			states:    map[string]int{StateListen: 1, StateEstab: 1, StateTimeWait: 1},
			listeners: []lst{{"0.0.0.0:80", 0, 511, false, "nginx"}},
		},
		{
			name: "headerless rows far down a paste, the first cut short",
			text: strings.Repeat("some prose\n", 25) + `ESTAB      0      0      10.0.0.5:80
CLOSE-WAIT 1      0      10.0.0.5:80    10.0.0.9:51234
CLOSE-WAIT 1      0      10.0.0.5:80    10.0.0.9:51236
`,
			states:  map[string]int{StateCloseWait: 2},
			missing: []string{"t.txt:26", "want State Recv-Q Send-Q Local Peer"},
		},
		{
			name: "redacted hosts and service names still count the sockets",
			text: `-- output of ` + "`ss -ot`" + `

CLOSE-WAIT  183     0        0.my.ip.0:https           193.118.53.194:59762
ESTAB       244     0        0.my.ip.0:https             23.96.35.227:60472
`,
			states:  map[string]int{StateCloseWait: 1, StateEstab: 1},
			missing: []string{"2 lines with a redacted host or a service name", "no -a: no LISTEN"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ss := readPaste(t, tt.text)
			s := ss[len(ss)-1]
			states := map[string]int{}
			for k, v := range s.States {
				if v != 0 {
					states[k] = v
				}
			}
			if tt.states != nil {
				if diff := cmp.Diff(tt.states, states); diff != "" {
					t.Errorf("states (-want +got):\n%s", diff)
				}
			}
			if diff := cmp.Diff(tt.listeners, listeners(s)); diff != "" {
				t.Errorf("listeners (-want +got):\n%s", diff)
			}
			if tt.counters != nil {
				if diff := cmp.Diff(tt.counters, s.Counters); diff != "" {
					t.Errorf("counters (-want +got):\n%s", diff)
				}
			}
			for k, v := range tt.sysctls {
				if s.Sysctls[k] != v {
					t.Errorf("sysctl %s = %q, want %q", k, s.Sysctls[k], v)
				}
			}
			var kinds []string
			for _, e := range s.Kernel {
				kinds = append(kinds, e.Kind)
				if !e.Time.IsZero() {
					t.Errorf("kernel line %q has a time %v: a paste has no boot time and -T no zone", e.Line, e.Time)
				}
			}
			if diff := cmp.Diff(tt.kernel, kinds); diff != "" {
				t.Errorf("kernel kinds (-want +got):\n%s", diff)
			}
			var reasons []string
			for _, m := range s.Missing {
				reasons = append(reasons, m.Source+": "+m.Reason)
			}
			all := strings.Join(reasons, "\n")
			for _, w := range tt.missing {
				if !strings.Contains(all, w) {
					t.Errorf("missing lacks %q; it holds:\n%s", w, all)
				}
			}
			for _, w := range tt.notMissing {
				if strings.Contains(all, w) {
					t.Errorf("missing holds %q, which the paste contradicts:\n%s", w, all)
				}
			}
		})
	}
}

// Whatever a paste does not hold is missing, named as for a bundle, so
// that diagnose says "not judged" and never "fine".
func TestPasteMissingLikeBundle(t *testing.T) {
	ss := readPaste(t, "net.core.somaxconn = 4096\n")
	var sources []string
	for _, m := range ss[0].Missing {
		sources = append(sources, m.Source)
	}
	for _, want := range []string{"date.txt", "ss-tan.txt", "nstat.txt", "sockstat.txt", "dmesg.txt", "owners"} {
		if !slices.Contains(sources, want) {
			t.Errorf("missing has no %q: %v", want, sources)
		}
	}
	if !ss[0].Time.IsZero() {
		t.Errorf("time %v: a paste without date has none", ss[0].Time)
	}
}

// A paste is one snapshot unless it holds two timed ones.
func TestPasteSnapshots(t *testing.T) {
	two := `$ date
Tue Nov 24 00:13:12 UTC 2026
$ nstat -az TcpExtListenOverflows
TcpExtListenOverflows 10 0.0
$ date
Tue Nov 24 00:13:22 UTC 2026
$ nstat -az TcpExtListenOverflows
TcpExtListenOverflows 60 0.0
$ date
Tue Nov 24 00:13:23 UTC 2026
`
	ss := readPaste(t, two)
	if len(ss) != 2 {
		t.Fatalf("%d snapshots, want 2", len(ss))
	}
	if d := ss[1].Time.Sub(ss[0].Time); d != 10*time.Second {
		t.Errorf("interval %v, want 10s", d)
	}
	if got := Diff(ss[0], ss[1]).Counters["TcpExtListenOverflows"]; got != 50 {
		t.Errorf("delta %d, want 50", got)
	}
	if ss[0].Source != "paste:t.txt#1" || ss[1].Source != "paste:t.txt#2" {
		t.Errorf("sources %q %q", ss[0].Source, ss[1].Source)
	}
	// A loop on one prompt line: each date starts a snapshot.
	loop := readPaste(t, `$ for i in 1 2; do date; nstat -az TcpExtListenDrops; sleep 5; done
Tue Nov 24 00:13:12 UTC 2026
#kernel
TcpExtListenDrops 3 0.0
Tue Nov 24 00:13:17 UTC 2026
#kernel
TcpExtListenDrops 8 0.0
`)
	if len(loop) != 2 || loop[1].Time.Sub(loop[0].Time) != 5*time.Second {
		t.Fatalf("loop: %d snapshots", len(loop))
	}
	// Two captures without dates between them: one snapshot, the
	// second named as ignored.
	one := readPaste(t, "$ ss -s\nTotal: 10\nTCP:   5 (estab 1, closed 0, orphaned 0, timewait 1)\n$ ss -s\nTotal: 12\nTCP:   6 (estab 2, closed 0, orphaned 0, timewait 1)\n")
	if len(one) != 1 {
		t.Fatalf("%d snapshots, want 1", len(one))
	}
	if w := one[0].Read[1].What; !strings.HasPrefix(w, "ignored: ss -s at line 2 was read") {
		t.Errorf("second ss -s: %q", w)
	}
	if one[0].Sockstat.SocketsUsed != 10 {
		t.Errorf("sockets used %d, want the first block's 10", one[0].Sockstat.SocketsUsed)
	}
}

func TestPasteNothingUsable(t *testing.T) {
	for _, text := range []string{"", "hello\nworld\n", "$ lsof -i :8080\nCOMMAND PID USER FD TYPE\njava 12 app 45u IPv6\n"} {
		_, err := FromPaste("ticket.txt", strings.NewReader(text), Options{})
		if !errors.Is(err, ErrParse) || !strings.Contains(err.Error(), "ticket.txt") {
			t.Errorf("%q: err %v, want ErrParse naming ticket.txt", text, err)
		}
	}
}

func TestNetstatToSS(t *testing.T) {
	tests := []struct {
		line, want string
		tcp        bool
		why        string
	}{
		{"tcp        0      0 0.0.0.0:22              0.0.0.0:*               LISTEN      1234/sshd", `LISTEN 0 0 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=1234))`, true, ""},
		{"tcp6       0      0 :::9000                 :::*                    LISTEN      17706/docker-proxy-", `LISTEN 0 0 :::9000 :::* users:(("docker-proxy-",pid=17706))`, true, ""},
		{"tcp        0    780 192.168.1.33:43124      193.235.232.87:4070     ESTABLISHED 1001       11114       3055/python", `ESTAB 0 780 192.168.1.33:43124 193.235.232.87:4070 users:(("python",pid=3055))`, true, ""},
		{"tcp        0      0 10.0.0.58:80            10.0.0.55:47529         TIME_WAIT   -", "TIME-WAIT 0 0 10.0.0.58:80 10.0.0.55:47529", true, ""},
		{"tcp        0      0 10.0.0.58:80            10.0.0.55:47529         SYN_RECV", "SYN-RECV 0 0 10.0.0.58:80 10.0.0.55:47529", true, ""},
		{"tcp6       0      0 44.225.164.27:52673     44.224.57.198:53551     VERBUNDEN", "", true, `unknown state "VERBUNDEN"`},
		{"udp        0      0 0.0.0.0:68              0.0.0.0:*                           567/dhclient", "", false, ""},
		// A row pasted into GitHub markdown outside a code block keeps
		// the escape of "*" (ardb issue 74, corpus 48).
		{`tcp        0      0 192.168.1.207:16379         0.0.0.0:\*                   LISTEN      44667/./ardb-server `, `LISTEN 0 0 192.168.1.207:16379 0.0.0.0:* users:(("./ardb-server",pid=44667))`, true, ""},
	}
	for _, tt := range tests {
		got, tcp, why := netstatToSS(tt.line)
		if got != tt.want || tcp != tt.tcp || why != tt.why {
			t.Errorf("netstatToSS(%q) = %q, %v, %q; want %q, %v, %q", tt.line, got, tcp, why, tt.want, tt.tcp, tt.why)
		}
	}
}

func TestParseNetstatS(t *testing.T) {
	tests := []struct {
		name string
		text string
		want map[string]uint64
		err  bool
	}{
		{"1.60 wording", "Tcp:\n    5 active connections openings\n    7 segments send out\n    2 segments retransmited\nTcpExt:\n    9 SYNs to LISTEN sockets ignored\n",
			map[string]uint64{"TcpActiveOpens": 5, "TcpOutSegs": 7, "TcpRetransSegs": 2, "TcpExtListenDrops": 9,
				"TcpExtListenOverflows": 0, "TcpExtSyncookiesSent": 0, "TcpExtSyncookiesRecv": 0, "TcpExtSyncookiesFailed": 0, "TcpExtTCPAbortOnMemory": 0, "TcpExtEmbryonicRsts": 0}, false},
		{"other sections skipped", "Ip:\n    12 total packets received\nUdp:\n    3 packets received\nTcp:\n    4 resets sent\n",
			map[string]uint64{"TcpOutRsts": 4}, false},
		{"memory pressure and cookies", "TcpExt:\n    3 connections aborted due to memory pressure\n    8 SYN cookies sent\n    2 invalid SYN cookies received\n    TCPReqQFullDoCookies: 8\n",
			map[string]uint64{"TcpExtTCPAbortOnMemory": 3, "TcpExtSyncookiesSent": 8, "TcpExtSyncookiesFailed": 2, "TcpExtTCPReqQFullDoCookies": 8,
				"TcpExtListenOverflows": 0, "TcpExtListenDrops": 0, "TcpExtSyncookiesRecv": 0, "TcpExtEmbryonicRsts": 0}, false},
		{"not netstat -s", "hello\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := ParseNetstatS(strings.NewReader(tt.text), "n.txt")
			if (err != nil) != tt.err || (err != nil && !errors.Is(err, ErrParse)) {
				t.Fatalf("err %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParsePrompt(t *testing.T) {
	tests := []struct {
		line string
		tool string // "" with ok: a prompt without a command
		ok   bool
	}{
		{"$ ss -s", "ss", true},
		{"# ss -tlnp", "ss", true},
		{"root@web1:~# nstat -az", "nstat", true},
		{"[root@host ~]# sudo ss -tanp", "ss", true},
		{"user@host:~$ dmesg -T | tail", "dmesg", true},
		{"bash-4.2# netstat -s", "netstat", true},
		{"/ # netstat -tln", "netstat", true},
		{"[~]# ss -lnt ", "ss", true},
		{"#cat /proc/net/sockstat", "cat", true},
		{"sudo ss -tup", "ss", true},
		{"--------------------- dump of netstat -napt ----------------------------", "netstat", true},
		{"$", "", true},
		{"# Kernel sysctl configuration", "", false},
		{"#kernel", "", false},
		{"ss shows the listeners", "", false},
		{"Feb 17 18:58:04 localhost kernel: possible SYN flooding on port 80. Sending cookies.", "", false},
	}
	for _, tt := range tests {
		cmds, ok := parsePrompt(tt.line, 1)
		tool := ""
		if len(cmds) > 0 {
			tool = cmds[0].tool
		}
		if ok != tt.ok || tool != tt.tool {
			t.Errorf("parsePrompt(%q) = %q, %v; want %q, %v", tt.line, tool, ok, tt.tool, tt.ok)
		}
	}
}

// A poster's note in parentheses after the command is prose: without
// cutProse corpus 49's pipeline read "grep 6399 ( 6399 is my number port
// for redis)". Parentheses the shell reads are kept.
func TestSplitCommandsProse(t *testing.T) {
	tests := []struct {
		line  string
		text  string
		args  []string
		pipes []string
	}{
		{"netstat -vatnl | grep 6399 ( 6399 is my number port for redis)", "netstat -vatnl | grep 6399", []string{"-vatnl"}, []string{"grep 6399"}},
		{"ss -tan (the whole table)", "ss -tan", []string{"-tan"}, nil},
		{"ss -tan '( sport = :80 )' | wc -l", "ss -tan '( sport = :80 )' | wc -l", []string{"-tan", "( sport = :80 )"}, []string{"wc -l"}},
		{`ss -tan \( sport = :80 \)`, `ss -tan \( sport = :80 \)`, []string{"-tan", `\(`, "sport", "=", ":80", `\)`}, nil},
		{"ss -tan | grep -c $(hostname -i)", "ss -tan | grep -c $(hostname -i)", []string{"-tan"}, []string{"grep -c $(hostname -i)"}},
		{"netstat -an | awk '{print $6}' | sort | uniq -c", "netstat -an | awk '{print $6}' | sort | uniq -c", []string{"-an"}, []string{"awk '{print $6}'", "sort", "uniq -c"}},
	}
	for _, tt := range tests {
		cmds := splitCommands(tt.line, 1)
		if len(cmds) == 0 {
			t.Errorf("splitCommands(%q): no command", tt.line)
			continue
		}
		type cmd struct {
			Text        string
			Args, Pipes []string
		}
		want := cmd{tt.text, tt.args, tt.pipes}
		got := cmd{cmds[0].text, cmds[0].args, cmds[0].pipes}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("splitCommands(%q) (-want +got):\n%s", tt.line, diff)
		}
	}
	// A subshell after ; is shell, not prose.
	if cmds := splitCommands("date; (cd /proc; cat net/sockstat)", 1); len(cmds) != 3 {
		t.Errorf("subshell: %d commands, want 3: %+v", len(cmds), cmds)
	}
}

func TestFromInputRoutes(t *testing.T) {
	// A bundle file name is a bundle; any other name a paste.
	if k := InputKind("testdata/bundle/ns"); k != "bundle" {
		t.Errorf("bundle dir: %s", k)
	}
	if k := InputKind("-"); k != "paste" {
		t.Errorf("stdin: %s", k)
	}
	ss, err := FromInput("-", strings.NewReader("net.core.somaxconn = 4096\n"), Options{})
	if err != nil || len(ss) != 1 || ss[0].Source != "paste:stdin" || ss[0].Sysctls["net.core.somaxconn"] != "4096" {
		t.Fatalf("stdin: %v %+v", err, ss)
	}
}

// FuzzPaste: any text either reads, with every block inside the paste and
// every line accounted for at most once, or is an ErrParse.
func FuzzPaste(f *testing.F) {
	for _, s := range []string{
		"$ ss -tlnp\nState Recv-Q Send-Q Local Address:Port Peer Address:Port\nLISTEN 0 128 0.0.0.0:22 0.0.0.0:*\n",
		"$ ss -tan state close-wait\nRecv-Q Send-Q Local Address:Port Peer Address:Port\n1 0 10.0.0.1:80 10.0.0.2:5555\n",
		"Proto Recv-Q Send-Q Local Address Foreign Address State\ntcp 0 0 0.0.0.0:22 0.0.0.0:* LISTEN 1/sshd\n",
		"Tcp:\n    3 active connection openings\nTcpExt:\n    1 times the listen queue of a socket overflowed\n",
		"[ 1.0] TCP: too many orphaned sockets\nFeb 23 16:44:36 h kernel: nf_conntrack: table full,\ndropping packet\n",
		"$ date\n1795479192\n$ nstat -az\n#kernel\nTcpExtListenOverflows 1 0.0\n$ date\n1795479202\n$ nstat\nTcpExtListenOverflows 5 0.0\n",
		"Total: 1\nTCP:   1 (estab 0, closed 0, orphaned 0, synrecv 0, timewait 0/0), ports 0\n",
		"# ss | grep ESTAB | wc -l\n12\n      3 LISTEN\n      4 TIME_WAIT\n",
		"TcpExt: A B\nTcpExt: 1 2\nsockets: used 1\nTCP: inuse 1 orphan 0 tw 0 alloc 1 mem 1\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		lines := strings.Count(text, "\n") + 1
		ss, err := FromPaste("f.txt", strings.NewReader(text), Options{})
		if err != nil {
			if !errors.Is(err, ErrParse) {
				t.Fatalf("error does not wrap ErrParse: %v", err)
			}
			return
		}
		covered := 0
		for _, s := range ss {
			for _, b := range s.Read {
				if b.Line < 1 || b.Line > lines || b.Lines < 1 || b.Lines > lines {
					t.Fatalf("block %+v outside the %d lines", b, lines)
				}
				covered += b.Lines
			}
			covered += s.IgnoredLines
			if s.States == nil || s.Counters == nil || s.Sysctls == nil {
				t.Fatalf("nil tables in %+v", s)
			}
		}
		if covered > lines {
			t.Fatalf("%d lines accounted for in a %d-line paste", covered, lines)
		}
	})
}

// A paste of a bundle's files, each after the prompt that made it, reads
// into the same census as the bundle: the paste reader adds no parser of
// its own.
func TestPasteOfBundleMatchesBundle(t *testing.T) {
	dir := "testdata/bundle/ns"
	want, err := FromBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	cmds := []struct{ file, cmd string }{
		{"date.txt", "date +%s.%N"}, {"hostname.txt", "hostname"}, {"uptime.txt", "cat /proc/uptime"},
		{"ss-tlnp.txt", "ss -tlnp"}, {"ss-tan.txt", "ss -tanpe"}, {"ss-s.txt", "ss -s"},
		{"sysctl.txt", "sysctl -a"}, {"nstat.txt", "nstat -az"}, {"netstat.txt", "cat /proc/net/netstat"},
		{"snmp.txt", "cat /proc/net/snmp"}, {"sockstat.txt", "cat /proc/net/sockstat"},
		{"sockstat6.txt", "cat /proc/net/sockstat6"}, {"dmesg.txt", "dmesg"},
	}
	var sb strings.Builder
	for _, snap := range []string{"1", "2"} {
		for _, c := range cmds {
			b, err := os.ReadFile(filepath.Join(dir, snap, c.file))
			if os.IsNotExist(err) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			sb.WriteString("root@vm:~# " + c.cmd + "\n")
			sb.Write(b)
		}
	}
	got := readPaste(t, sb.String())
	if len(got) != len(want) {
		t.Fatalf("%d snapshots, bundle has %d", len(got), len(want))
	}
	for i := range want {
		w, g := *want[i], *got[i]
		for _, s := range []*Sample{&w, &g} {
			s.Source, s.Missing, s.Read, s.IgnoredLines = "", nil, nil, 0
		}
		if diff := cmp.Diff(w, g); diff != "" {
			t.Errorf("snapshot %d: paste differs from the bundle (-bundle +paste):\n%s", i+1, diff)
		}
	}
	for _, b := range got[0].Read {
		if strings.HasPrefix(b.What, "not read") || strings.HasPrefix(b.What, "ignored") {
			t.Errorf("block %+v", b)
		}
	}
}

// An application's log line that says connect() failed with EADDRNOTAVAIL
// is read, with the destination it names; the same errno from bind() or
// listen (an address the host does not have) is not a port exhaustion.
func TestPasteConnectErrors(t *testing.T) {
	text := `[root@TJHY-5T-207 ardb]# ./redis-benchmark -h 192.168.1.207 -p 16379 -n 10000 -c 20 --csv -k 0
"LPUSH","13736.26"
Could not connect to Redis at 192.168.1.207:16379: Cannot assign requested address
[root@TJHY-5T-207 ardb]# netstat -na | grep 16379 | awk '/^tcp/ {++state[$NF]} END {for(key in state) print key,"\t",state[key]}'
TIME_WAIT    49589
LISTEN   1
$ tail -n 3 app.log
CRITICAL Uncaught Predis\Connection\ConnectionException: Cannot assign requested address [tcp://146.59.192.30:6379] in /var/www/x.php:146
Error connectRedis: Cannot assign requested address
2018/09/29 23:34:57 [crit] 4793#4793: *210641 connect() to [2001:db8::5]:80 failed (99: Cannot assign requested address) while connecting to upstream, client: 10.0.0.9
$ tail -n 1 other.log
listen tcp 10.9.9.9:8844: bind: cannot assign requested address
$ tail -n 4 java.log
java.net.NoRouteToHostException: Cannot assign requested address
java.net.BindException: Cannot assign requested address (connect failed)
java.net.BindException: Cannot assign requested address (Bind failed)
`
	s := readPaste(t, text)[0]
	want := []ConnectError{
		{Dst: "192.168.1.207", Port: 16379, Line: "Could not connect to Redis at 192.168.1.207:16379: Cannot assign requested address"},
		{Dst: "146.59.192.30", Port: 6379, Line: `CRITICAL Uncaught Predis\Connection\ConnectionException: Cannot assign requested address [tcp://146.59.192.30:6379] in /var/www/x.php:146`},
		{Line: "Error connectRedis: Cannot assign requested address"},
		{Dst: "2001:db8::5", Port: 80, Line: "2018/09/29 23:34:57 [crit] 4793#4793: *210641 connect() to [2001:db8::5]:80 failed (99: Cannot assign requested address) while connecting to upstream, client: 10.0.0.9"},
		{Line: "java.net.NoRouteToHostException: Cannot assign requested address"},
		{Line: "java.net.BindException: Cannot assign requested address (connect failed)"},
	}
	if diff := cmp.Diff(want, s.ConnectErrors); diff != "" {
		t.Errorf("connect errors (-want +got):\n%s", diff)
	}
	if s.States[StateTimeWait] != 49589 {
		t.Errorf("TIME-WAIT %d, want 49589: the counts after the log line are read too", s.States[StateTimeWait])
	}
}
