package sample

import (
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
)

// net-tools (and busybox) netstat: the socket table of `netstat -tanp`,
// `netstat -tulnp`, and the prose counters of `netstat -s`.
//
// Both netstats read /proc/net/tcp (net-tools netstat.c tcp_do_one,
// busybox networking/netstat.c), where the kernel prints a listener's
// accept-queue length (sk_ack_backlog) as rx_queue and write_seq - snd_una,
// always 0 for a listener, as tx_queue. So on LISTEN lines Recv-Q is the
// accept queue as in ss, but Send-Q is 0, not the queue's limit: a netstat
// listener's limit is unknown (capture ss -tlnp). busybox prints the same
// columns from the same file; its Recv-Q on LISTEN is the queue too, not
// always 0.

// netstatStates maps netstat's state names to ss's.
var netstatStates = map[string]string{
	"ESTABLISHED": StateEstab, "SYN_SENT": StateSynSent, "SYN_RECV": StateSynRecv,
	"FIN_WAIT1": StateFinWait1, "FIN_WAIT2": StateFinWait2, "TIME_WAIT": StateTimeWait,
	"CLOSE": StateClose, "CLOSE_WAIT": StateCloseWait, "LAST_ACK": StateLastAck,
	"LISTEN": StateListen, "CLOSING": StateClosing,
}

// netstatToSS rewrites one socket line of netstat's table as the ss line
// that says the same, so that the one ss parser and the census read it:
//
//	tcp   101   0 0.0.0.0:80   0.0.0.0:*   LISTEN   1/java
//	LISTEN 101 0 0.0.0.0:80 0.0.0.0:* users:(("java",pid=1))
//
// tcp is false for a line of another protocol (udp, raw, unix), which is
// skipped; why says what is wrong with a TCP line that cannot be read.
func netstatToSS(line string) (ss string, tcp bool, why string) {
	f := strings.Fields(line)
	if len(f) == 0 || (f[0] != "tcp" && f[0] != "tcp6" && f[0] != "tcp4") {
		return "", false, ""
	}
	if len(f) < 6 {
		return "", true, "want Proto Recv-Q Send-Q Local Foreign State"
	}
	st, ok := netstatStates[f[5]]
	if !ok {
		return "", true, "unknown state " + strconv.Quote(f[5])
	}
	for _, q := range f[1:3] {
		if _, err := strconv.ParseUint(q, 10, 32); err != nil {
			return "", true, "Recv-Q/Send-Q not numbers"
		}
	}
	// A table pasted into GitHub markdown outside a code block keeps
	// the markdown escape of "*" ("0.0.0.0:\*"): it is the wildcard.
	for i := 3; i <= 4; i++ {
		f[i] = strings.ReplaceAll(f[i], `\*`, "*")
	}
	out := st + " " + f[1] + " " + f[2] + " " + f[3] + " " + f[4]
	// PID/Program name ("1234/nginx: master", "-") after the state, or
	// after User and Inode with -e.
	for i := 6; i < len(f); i++ {
		pid, prog, ok := strings.Cut(f[i], "/")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(pid)
		if err != nil || n <= 0 {
			continue
		}
		comm := strings.TrimSuffix(prog, ":")
		out += ` users:(("` + comm + `",pid=` + pid + `))`
		break
	}
	return out, true, ""
}

// netstatSTemplates maps the prose of net-tools `netstat -s` (statistics.c,
// current and 1.60 wording), with its number replaced by N, to the nstat
// name of the counter. Counters netstat -s has no prose for are printed as
// "Name: value" under their section and read as such.
var netstatSTemplates = sync.OnceValue(func() map[string]string {
	return map[string]string{
		"N active connection openings":                            "TcpActiveOpens",
		"N active connections openings":                           "TcpActiveOpens",
		"N passive connection openings":                           "TcpPassiveOpens",
		"N failed connection attempts":                            "TcpAttemptFails",
		"N connection resets received":                            "TcpEstabResets",
		"N connections established":                               "TcpCurrEstab",
		"N segments received":                                     "TcpInSegs",
		"N segments sent out":                                     "TcpOutSegs",
		"N segments send out":                                     "TcpOutSegs",
		"N segments retransmitted":                                "TcpRetransSegs",
		"N segments retransmited":                                 "TcpRetransSegs",
		"N bad segments received":                                 "TcpInErrs",
		"N bad segments received.":                                "TcpInErrs",
		"N resets sent":                                           "TcpOutRsts",
		"N delayed acks further delayed because of locked socket": "TcpExtDelayedACKLocked",
		"Quick ack mode was activated N times":                    "TcpExtDelayedACKLost",
		"N delayed acks sent":                                     "TcpExtDelayedACKs",
		"N resets received for embryonic SYN_RECV sockets":        "TcpExtEmbryonicRsts",
		"N SYNs to LISTEN sockets dropped":                        "TcpExtListenDrops",
		"N SYNs to LISTEN sockets ignored":                        "TcpExtListenDrops",
		"N times the listen queue of a socket overflowed":         "TcpExtListenOverflows",
		"N ICMP packets dropped because socket was locked":        "TcpExtLockDroppedIcmps",
		"N packets dropped from out-of-order queue because of socket buffer overrun": "TcpExtOfoPruned",
		"N ICMP packets dropped because they were out-of-window":                     "TcpExtOutOfWindowIcmps",
		"N active connections rejected because of time stamp":                        "TcpExtPAWSActive",
		"N packets rejected in established connections because of timestamp":         "TcpExtPAWSEstab",
		"N packets rejects in established connections because of timestamp":          "TcpExtPAWSEstab",
		"N passive connections rejected because of time stamp":                       "TcpExtPAWSPassive",
		"N packets pruned from receive queue because of socket buffer overrun":       "TcpExtPruneCalled",
		"N packets pruned from receive queue":                                        "TcpExtRcvPruned",
		"Ran N times out of system memory during packet sending":                     "TcpExtSockMallocOOM",
		"N invalid SYN cookies received":                                             "TcpExtSyncookiesFailed",
		"N SYN cookies received":                                                     "TcpExtSyncookiesRecv",
		"N SYN cookies sent":                                                         "TcpExtSyncookiesSent",
		"N times unable to send RST due to no memory":                                "TcpExtTCPAbortFailed",
		"N connections reset due to early user close":                                "TcpExtTCPAbortOnClose",
		"N connections reset due to unexpected data":                                 "TcpExtTCPAbortOnData",
		"N connections aborted after user close in linger timeout":                   "TcpExtTCPAbortOnLinger",
		"N connections aborted due to memory pressure":                               "TcpExtTCPAbortOnMemory",
		"N connections reset due to unexpected SYN":                                  "TcpExtTCPAbortOnSyn",
		"N connections aborted due to timeout":                                       "TcpExtTCPAbortOnTimeout",
		"N bytes directly in process context from backlog":                           "TcpExtTCPDirectCopyFromBacklog",
		"N bytes directly received in process context from prequeue":                 "TcpExtTCPDirectCopyFromPrequeue",
		"N packets directly received from backlog":                                   "TcpExtTCPDirectCopyFromBacklog",
		"N packets directly received from prequeue":                                  "TcpExtTCPDirectCopyFromPrequeue",
		"N DSACKs for out of order packets received":                                 "TcpExtTCPDSACKOfoRecv",
		"N DSACKs sent for out of order packets":                                     "TcpExtTCPDSACKOfoSent",
		"N DSACKs sent for old packets":                                              "TcpExtTCPDSACKOldSent",
		"N DSACKs received":                                                          "TcpExtTCPDSACKRecv",
		"N congestion window recovered without slow start using DSACK":               "TcpExtTCPDSACKUndo",
		"N congestion windows recovered without slow start by DSACK":                 "TcpExtTCPDSACKUndo",
		"Detected reordering N times using FACK":                                     "TcpExtTCPFACKReorder",
		"N fast retransmits":                                                         "TcpExtTCPFastRetrans",
		"N forward retransmits":                                                      "TcpExtTCPForwardRetrans",
		"N congestion windows fully recovered without slow start":                    "TcpExtTCPFullUndo",
		"N predicted acknowledgments":                                                "TcpExtTCPHPAcks",
		"N packet headers predicted":                                                 "TcpExtTCPHPHits",
		"N packets header predicted":                                                 "TcpExtTCPHPHits",
		"N packet headers predicted and directly queued to user":                     "TcpExtTCPHPHitsToUser",
		"N packets header predicted and directly queued to user":                     "TcpExtTCPHPHitsToUser",
		"N timeouts in loss state":                                                   "TcpExtTCPLossFailures",
		"N TCP data loss events":                                                     "TcpExtTCPLoss",
		"N congestion windows recovered without slow start after partial ack":        "TcpExtTCPLossUndo",
		"N retransmits lost":                                                         "TcpExtTCPLostRetransmits",
		"TCP ran low on memory N times":                                              "TcpExtTCPMemoryPressures",
		"N congestion windows partially recovered using Hoe heuristic":               "TcpExtTCPPartialUndo",
		"N packets directly queued to recvmsg prequeue":                              "TcpExtTCPPrequeued",
		"N packets directly queued to recvmsg prequeue.":                             "TcpExtTCPPrequeued",
		"N packets dropped from prequeue":                                            "TcpExtTCPPrequeueDropped",
		"N acknowledgments not containing data payload received":                     "TcpExtTCPPureAcks",
		"N acknowledgments not containing data received":                             "TcpExtTCPPureAcks",
		"N packets collapsed in receive queue due to low socket buffer":              "TcpExtTCPRcvCollapsed",
		"N timeouts after reno fast retransmit":                                      "TcpExtTCPRenoFailures",
		"N reno fast retransmits failed":                                             "TcpExtTCPRenoRecoveryFail",
		"N classic Reno fast retransmits failed":                                     "TcpExtTCPRenoRecoveryFail",
		"N times recovered from packet loss due to fast retransmit":                  "TcpExtTCPRenoRecovery",
		"Detected reordering N times using reno fast retransmit":                     "TcpExtTCPRenoReorder",
		"N timeouts after SACK recovery":                                             "TcpExtTCPSackFailures",
		"N SACK retransmits failed":                                                  "TcpExtTCPSackRecoveryFail",
		"N times recovered from packet loss by selective acknowledgements":           "TcpExtTCPSackRecovery",
		"N bad SACK blocks received":                                                 "TcpExtTCPSACKReneging",
		"Detected reordering N times using SACK":                                     "TcpExtTCPSACKReorder",
		"N times receiver scheduled too late for direct processing":                  "TcpExtTCPSchedulerFailed",
		"N retransmits in slow start":                                                "TcpExtTCPSlowStartRetrans",
		"N other TCP timeouts":                                                       "TcpExtTCPTimeouts",
		"Detected reordering N times using time stamp":                               "TcpExtTCPTSReorder",
		"N TCP sockets finished time wait in slow timer":                             "TcpExtTWKilled",
		"N TCP sockets finished time wait in fast timer":                             "TcpExtTW",
		"N time wait sockets recycled by time stamp":                                 "TcpExtTWRecycled",
	}
})

// netstatSOmitted are the TcpExt counters netstat -s prints only when they
// are not 0 (opt_number in statistics.c) and that every kernel since 2.6
// has: under a TcpExt section that was pasted whole, an absent line means 0.
var netstatSOmitted = []string{
	"TcpExtListenOverflows", "TcpExtListenDrops", "TcpExtSyncookiesSent", "TcpExtSyncookiesRecv",
	"TcpExtSyncookiesFailed", "TcpExtTCPAbortOnMemory", "TcpExtEmbryonicRsts",
}

// netstatSSections are the section headers of netstat -s.
var netstatSSections = map[string]bool{
	"Ip": true, "Icmp": true, "IcmpMsg": true, "Tcp": true, "Udp": true, "UdpLite": true, "TcpExt": true,
	"IpExt": true, "MPTcpExt": true, "Sctp": true, "Ip6": true, "Icmp6": true, "Udp6": true, "UdpLite6": true,
}

// netstatSTemplate returns the prose of a netstat -s line with its first
// number replaced by N and spaces folded (foldSpace), and the number.
func netstatSTemplate(line string) (string, uint64, bool) {
	t := foldSpace(line)
	i := strings.IndexAny(t, "0123456789")
	if i < 0 {
		return "", 0, false
	}
	j := i
	for j < len(t) && t[j] >= '0' && t[j] <= '9' {
		j++
	}
	v, err := strconv.ParseUint(t[i:j], 10, 64)
	if err != nil {
		return "", 0, false
	}
	return t[:i] + "N" + t[j:], v, true
}

// netstatSLine says whether a line belongs to netstat -s output: a section
// header, or prose it prints.
func netstatSLine(t string) bool {
	if h, ok := strings.CutSuffix(strings.TrimSpace(t), ":"); ok && netstatSSections[h] {
		return true
	}
	tmpl, _, ok := netstatSTemplate(t)
	return ok && netstatSTemplates()[tmpl] != ""
}

// ParseNetstatS reads net-tools `netstat -s` (or -st) output into counters
// keyed by nstat names ("TcpExtListenOverflows"): the prose lines of the
// Tcp and TcpExt sections through netstatSTemplates, "Name: value" lines
// under those sections as they are. Other sections (Ip, Icmp, Udp ...) are
// skipped. Under a TcpExt header, the counters of netstatSOmitted that
// have no line are 0 (netstat -s omits them when they are). Lines not
// understood are noted; output without a single counter is an ErrParse
// naming the file.
func ParseNetstatS(r io.Reader, name string) (map[string]uint64, []Missing, error) {
	return parseNetstatS(r, name, true)
}

func parseNetstatS(r io.Reader, name string, zeros bool) (map[string]uint64, []Missing, error) {
	lr := newLineReader(r, name)
	nt := notes{file: name}
	out := map[string]uint64{}
	section := ""
	sawTcpExt := false
	for {
		line, err := lr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		t := strings.TrimSpace(line)
		if t == "" {
			continue
		}
		if h, ok := strings.CutSuffix(t, ":"); ok && netstatSSections[h] {
			section = h
			sawTcpExt = sawTcpExt || h == "TcpExt"
			continue
		}
		if section != "" && section != "Tcp" && section != "TcpExt" && section != "MPTcpExt" {
			continue
		}
		if k, v, ok := strings.Cut(t, ": "); ok && nstatName(k) {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			if err != nil {
				nt.add(lr.n, "value is not a number", line)
				continue
			}
			sec := section
			if sec == "" {
				// A line pasted without its section: the names
				// netstat -s prints this way are TcpExt's.
				sec = "TcpExt"
			}
			out[sec+k] = n
			continue
		}
		tmpl, v, ok := netstatSTemplate(t)
		c := netstatSTemplates()[tmpl]
		if !ok || c == "" {
			if section == "" {
				nt.add(lr.n, "not netstat -s prose", line)
			}
			continue
		}
		out[c] = v
	}
	if len(out) == 0 && !sawTcpExt {
		return nil, nil, lr.errf(max(lr.n, 1), "no Tcp or TcpExt counter: not netstat -s output")
	}
	if sawTcpExt && zeros {
		for _, c := range netstatSOmitted {
			if _, ok := out[c]; !ok {
				out[c] = 0
			}
		}
	}
	return out, nt.list(), nil
}
