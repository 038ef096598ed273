package sample

// DropCounters are the nstat counters that count connections or SYNs the
// kernel dropped or refused for want of room: accept and SYN queues, TCP
// memory, TIME-WAIT buckets. Any of them rising is trouble; the agent's
// cheap tier watches exactly these, and its Prometheus export must carry
// each (a test of package agent checks it).
var DropCounters = []string{
	"TcpExtListenOverflows", "TcpExtListenDrops", "TcpExtTCPReqQFullDrop", "TcpExtTCPReqQFullDoCookies",
	"TcpExtTCPAbortOnMemory", "TcpExtTCPTimeWaitOverflow",
}
