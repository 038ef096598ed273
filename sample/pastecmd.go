package sample

import (
	"strconv"
	"strings"
	"sync"
)

// The commands of a paste: prompt lines ("$ ss -s", "root@web1:~# nstat
// -az", "[root@host ~]# ss -tlnp") and bare command lines ("sudo ss -tup",
// "-- output of `ss -ot`") say what the lines after them are. The shape of
// the output decides in the end (a "$ ss -ltnp" followed by netstat's
// table is read as netstat); the command adds what the output cannot say:
// the state of a state-filtered ss table, the key of a `cat /proc/sys/...`,
// a grep that makes a table partial.

var (
	// user@host:~$ cmd, root@web1:~# cmd, (venv) user@host ~ % cmd,
	// @ubuntu:~$ cmd (a user name cut out of the paste).
	promptUserHostRE = lazyRE(`^(?:\([^)]*\)\s*)?[\w.-]*@[\w.-]+(?::[^\s#$%]*|\s+[^\s#$%]+)?\s?[#$%]\s?(.*)$`)
	// [root@host ~]# cmd, [~]# cmd.
	promptBracketRE = lazyRE(`^\[[^\]]{1,80}\]\s?[#$]\s?(.*)$`)
	// bash-4.2# cmd, sh-5.1$ cmd, / # cmd (busybox), ~ # cmd.
	promptShellRE = lazyRE(`^(?:(?:ba|z|a|da)?sh-[\d.]+|/|~|/[\w/.-]*)\s?[#$]\s(.*)$`)
	// $ cmd, # cmd, #cmd, % cmd.
	promptBareRE = lazyRE(`^([#$%])\s?(.*)$`)
	// "-- output of `ss -ot`", "---- dump of netstat -napt ----".
	prosedCmdRE = lazyRE("(?i)^[-=#* ]*(?:output of|dump of|result of|running)[: ]+`?([^`]+?)`?[-=:* ]*$")
)

// pasteTools are the commands whose output a paste may hold or that
// commonly wrap or filter it. A bare "# word" line is a prompt only when
// word is one of them (otherwise it is a comment, as in sysctl.conf).
var pasteTools = sync.OnceValue(func() map[string]bool {
	return map[string]bool{
		"ss": true, "netstat": true, "nstat": true, "sysctl": true, "cat": true, "dmesg": true,
		"journalctl": true, "date": true, "uptime": true, "hostname": true, "grep": true, "egrep": true,
		"zgrep": true, "tail": true, "head": true, "less": true, "more": true, "zcat": true, "logread": true,
		"ip": true, "ulimit": true, "lsof": true, "ps": true, "top": true, "free": true, "uname": true,
		"echo": true, "ls": true, "awk": true, "sort": true, "wc": true, "watch": true, "conntrack": true,
		"iptables": true, "nft": true, "sar": true, "systemctl": true, "docker": true, "kubectl": true,
		"curl": true, "telnet": true, "nc": true, "ping": true, "ifconfig": true, "tc": true, "ethtool": true,
		"ufw": true, "for": true, "while": true, "busybox": true, "printf": true, "id": true, "which": true,
		"cd": true, "vmstat": true, "iostat": true, "mpstat": true, "pidstat": true, "strace": true,
	}
})

// wrappers run the command that follows them.
var wrappers = map[string]bool{
	"sudo": true, "doas": true, "env": true, "time": true, "nice": true, "command": true,
	"exec": true, "nsenter": true, "busybox": true, "watch": true, "ionice": true, "chroot": true,
	"do": true, "then": true, "else": true, // a loop or test on one line: for i in 1 2; do date; ss -s; done
}

// pasteCmd is one command of a prompt line: the tool, its arguments and
// what it was piped through.
type pasteCmd struct {
	line int    // line number of the prompt
	text string // the whole command line as pasted, for ReadBlock.Kind
	tool string // "ss", "netstat", "cat" ... ("" when none is known)
	args []string
	// pipes names the later stages of the pipeline ("grep 8080", "wc").
	pipes []string
}

// parsePrompt says whether line is a prompt or a bare command line and
// returns the commands on it. A prompt with no command (an empty "$")
// returns ok with no commands: it ends the block above.
func parsePrompt(line string, n int) (cmds []pasteCmd, ok bool) {
	t := strings.TrimSpace(line)
	if t == "" {
		return nil, false
	}
	var text string
	strict := false // the command must start with a known tool
	switch {
	case promptBracketRE().MatchString(t):
		text = promptBracketRE().FindStringSubmatch(t)[1]
	case promptUserHostRE().MatchString(t) && !strings.Contains(t[:strings.IndexAny(t, "#$%")], " kernel:"):
		text = promptUserHostRE().FindStringSubmatch(t)[1]
	case promptShellRE().MatchString(t):
		text = promptShellRE().FindStringSubmatch(t)[1]
	case promptBareRE().MatchString(t):
		m := promptBareRE().FindStringSubmatch(t)
		text = m[2]
		// "# comment" and "#kernel" (nstat) are not prompts.
		strict = m[1] == "#"
	case prosedCmdRE().MatchString(t):
		text = prosedCmdRE().FindStringSubmatch(t)[1]
		strict = true
	default:
		// A command line pasted without its prompt ("sudo ss -tup",
		// "netstat -s"): only the tools whose output a paste is about,
		// with arguments that look like options.
		text = t
		strict = true
		switch fw := firstField(t); {
		case fw == "sudo", fw == "cat", strings.HasPrefix(fw, "/"):
		case fw == "ss", fw == "netstat", fw == "nstat", fw == "dmesg", fw == "journalctl", fw == "sysctl", fw == "logread":
		default:
			// Most lines of a paste: not worth splitting.
			return nil, false
		}
		cmds = splitCommands(text, n)
		if len(cmds) == 0 || !bareCommand(cmds[0], t) {
			return nil, false
		}
		return cmds, true
	}
	text = strings.TrimSpace(text)
	if text == "" {
		return nil, true
	}
	cmds = splitCommands(text, n)
	if len(cmds) == 0 {
		return nil, false
	}
	if strict && !plausibleCommand(cmds[0]) {
		return nil, false
	}
	return cmds, true
}

// bareCommand accepts a command line without a prompt: one of the tools a
// capture is made with, and options or paths (not prose such as "ss
// shows the listeners").
func bareCommand(c pasteCmd, line string) bool {
	switch c.tool {
	case "ss", "netstat", "nstat", "dmesg", "journalctl", "sysctl", "logread":
	case "cat":
		if len(c.args) == 0 || !strings.HasPrefix(c.args[0], "/proc/") {
			return false
		}
	default:
		return false
	}
	if len(line) > 200 {
		return false
	}
	for _, a := range c.args {
		if !(strings.HasPrefix(a, "-") || strings.HasPrefix(a, "/") || strings.Contains(a, ".") || strings.Contains(a, ":") ||
			strings.ContainsAny(a, "()=") || ssStateWord(a) || a == "state" || a == "exclude" || a == "sport" || a == "dport" || a == "src" || a == "dst") {
			return false
		}
	}
	return true
}

// plausibleCommand rejects "# some comment" lines: the first word must be
// a known tool and its first argument must look like one.
func plausibleCommand(c pasteCmd) bool {
	if c.tool == "" {
		return false
	}
	if len(c.args) == 0 {
		return true
	}
	a := c.args[0]
	return strings.HasPrefix(a, "-") || strings.HasPrefix(a, "/") || strings.HasPrefix(a, "'") || strings.ContainsAny(a, ".=:(|") || len(a) <= 4
}

// splitCommands splits a command line at ;, && and || and each command at
// | into its tool, arguments and the later pipeline stages. Quotes are
// honoured; nothing is expanded.
func splitCommands(text string, n int) []pasteCmd {
	var out []pasteCmd
	text = cutProse(text)
	for _, seq := range splitOutsideQuotes(text, []string{"&&", "||", ";"}) {
		stages := splitOutsideQuotes(seq, []string{"|"})
		if len(stages) == 0 {
			continue
		}
		words := shellWords(stages[0])
		c := pasteCmd{line: n, text: strings.TrimSpace(text)}
		// Skip wrappers and their options: sudo -i, watch -n1, nsenter -t 1 -n,
		// ip netns exec NAME, FOO=bar.
		for len(words) > 0 {
			w := words[0]
			switch {
			case wrappers[w]:
				words = words[1:]
				for len(words) > 0 && strings.HasPrefix(words[0], "-") {
					opt := words[0]
					words = words[1:]
					// Options with a separate value (-n 1, -t PID, -u user).
					if len(opt) == 2 && strings.ContainsAny(opt[1:], "ntuUgpd") && len(words) > 0 && !pasteTools()[words[0]] {
						words = words[1:]
					}
				}
				continue
			case strings.Contains(w, "=") && !strings.HasPrefix(w, "-"):
				words = words[1:]
				continue
			case w == "ip" && len(words) >= 4 && words[1] == "netns" && words[2] == "exec":
				words = words[4:]
				continue
			}
			break
		}
		if len(words) == 0 {
			continue
		}
		tool := words[0]
		if i := strings.LastIndexByte(tool, '/'); i >= 0 {
			tool = tool[i+1:] // /usr/sbin/ss
		}
		if pasteTools()[tool] {
			c.tool = tool
		}
		c.args = words[1:]
		for _, st := range stages[1:] {
			c.pipes = append(c.pipes, strings.TrimSpace(st))
		}
		out = append(out, c)
	}
	return out
}

// cutProse ends a command line where the poster's note in parentheses
// starts: "netstat -vatnl | grep 6399 ( 6399 is my number port for redis)"
// (hiredis issue 58, corpus 49) was taken whole, and "piped through grep
// 6399 ( 6399 is my number port for redi..." was in the report. To a
// shell an unquoted "(" after a command's word is a syntax error, so
// there it is prose, not the pattern; a subshell ("(cd /; ss -s)", "if (
// ... )"), $( ), <( ), a=( ), a quoted or escaped "(" (ss's "'( sport =
// :80 )'", "\( ... \)") are shell and kept.
func cutProse(text string) string {
	var quote byte
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\\':
			i++
		case c == '\'' || c == '"':
			quote = c
		case c == '(' && i > 0 && (text[i-1] == ' ' || text[i-1] == '\t'):
			before := strings.TrimRight(text[:i], " \t")
			words := strings.Fields(before)
			if len(words) == 0 || strings.ContainsAny(before[len(before)-1:], "|&;<>$=(`!") {
				continue
			}
			switch words[len(words)-1] {
			case "if", "then", "else", "elif", "do", "while", "until", "time", "!":
				continue
			}
			return before
		}
	}
	return text
}

// splitOutsideQuotes splits s at any of seps that is not inside quotes or
// parentheses-free quoting.
func splitOutsideQuotes(s string, seps []string) []string {
	var out []string
	var quote byte
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if quote != 0 {
			if c == quote {
				quote = 0
			}
			continue
		}
		if c == '\'' || c == '"' {
			quote = c
			continue
		}
		for _, sep := range seps {
			if strings.HasPrefix(s[i:], sep) {
				// "||" is not two pipes.
				if sep == "|" && strings.HasPrefix(s[i:], "||") {
					continue
				}
				out = append(out, strings.TrimSpace(s[start:i]))
				i += len(sep) - 1
				start = i + 1
				break
			}
		}
	}
	out = append(out, strings.TrimSpace(s[start:]))
	keep := out[:0]
	for _, p := range out {
		if p != "" {
			keep = append(keep, p)
		}
	}
	return keep
}

// shellWords splits a command at whitespace, keeping quoted strings
// together (without their quotes).
func shellWords(s string) []string {
	var out []string
	var cur strings.Builder
	var quote byte
	in := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote = c
			in = true
		case c == ' ' || c == '\t':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}

// ssStateWord says whether w names a state (or state group) of ss's
// "state" filter.
func ssStateWord(w string) bool {
	_, ok := ssFilterStates[strings.ToLower(w)]
	return ok
}

// ssFilterStates maps the state names of `ss state X` to the states they
// select (iproute2 misc/ss.c, scan_state).
var ssFilterStates = map[string][]string{
	"established": {StateEstab}, "syn-sent": {StateSynSent}, "syn-recv": {StateSynRecv}, "syn-rcv": {StateSynRecv},
	"fin-wait-1": {StateFinWait1}, "fin-wait-2": {StateFinWait2}, "time-wait": {StateTimeWait},
	"closed": {StateClose}, "close": {StateClose}, "unconnected": {StateClose}, "close-wait": {StateCloseWait},
	"last-ack": {StateLastAck}, "listening": {StateListen}, "listen": {StateListen}, "closing": {StateClosing},
	"all":          States,
	"connected":    {StateEstab, StateSynSent, StateSynRecv, StateFinWait1, StateFinWait2, StateTimeWait, StateCloseWait, StateLastAck, StateClosing},
	"synchronized": {StateEstab, StateSynRecv, StateFinWait1, StateFinWait2, StateTimeWait, StateCloseWait, StateLastAck, StateClosing},
	"bucket":       {StateSynRecv, StateTimeWait},
	"big":          {StateEstab, StateSynSent, StateFinWait1, StateFinWait2, StateClose, StateCloseWait, StateLastAck, StateListen, StateClosing},
}

// ssCmd is what an ss command line says about its output.
type ssCmd struct {
	listenOnly bool     // -l, or state listening
	all        bool     // -a
	states     []string // the states selected by "state X" (nil: no state filter)
	filter     string   // the filter expression, "" for none
	sport      uint16   // the port of a "sport = :N" filter, 0 for none
	// sportOnly is the port of a filter that is "sport = :N" and nothing
	// else: every socket on N is shown.
	sportOnly uint16
	exclude   bool // an "exclude STATE": sockets of that state left out
	oneFamily bool // -4, -6, -f, -A: sockets of other families left out
	summary   bool // -s
	numeric   bool // -n
}

// parseSSCmd reads the options and filter of an ss command.
func parseSSCmd(c pasteCmd) ssCmd {
	var sc ssCmd
	var filter []string
	seen := map[string]bool{}
	for i := 0; i < len(c.args); i++ {
		a := c.args[i]
		switch {
		case strings.HasPrefix(a, "--"):
			switch a {
			case "--listening":
				sc.listenOnly = true
			case "--all":
				sc.all = true
			case "--summary":
				sc.summary = true
			case "--numeric":
				sc.numeric = true
			case "--ipv4", "--ipv6", "--family", "--query":
				sc.oneFamily = true
			}
		case strings.HasPrefix(a, "-") && len(a) > 1:
			if strings.Contains(a, "l") {
				sc.listenOnly = true
			}
			if strings.Contains(a, "a") {
				sc.all = true
			}
			if strings.Contains(a, "s") {
				sc.summary = true
			}
			if strings.Contains(a, "n") {
				sc.numeric = true
			}
			if strings.ContainsAny(a, "46fA") {
				sc.oneFamily = true
			}
		case (a == "state" || a == "exclude") && i+1 < len(c.args):
			i++
			sc.exclude = sc.exclude || a == "exclude"
			st := ssFilterStates[strings.ToLower(c.args[i])]
			if a == "state" {
				for _, s := range st {
					if !seen[s] {
						seen[s] = true
						sc.states = append(sc.states, s)
					}
				}
			}
		default:
			filter = append(filter, a)
		}
	}
	if len(sc.states) == 1 && sc.states[0] == StateListen {
		sc.listenOnly = true
	}
	sc.filter = strings.TrimSpace(strings.Join(filter, " "))
	if m := sportRE().FindStringSubmatch(sc.filter); m != nil && !strings.Contains(sc.filter, " or ") {
		if p, err := strconv.ParseUint(m[1], 10, 16); err == nil && p > 0 {
			sc.sport = uint16(p)
		}
	}
	if m := sportOnlyRE().FindStringSubmatch(strings.NewReplacer("'", "", `"`, "").Replace(sc.filter)); m != nil {
		if p, err := strconv.ParseUint(m[1], 10, 16); err == nil && p > 0 {
			sc.sportOnly = uint16(p)
		}
	}
	return sc
}

var (
	sportRE = lazyRE(`sport\s*(?:=|==|eq)\s*:(\d{1,5})\b`)
	// A filter of the local port and nothing else: "( sport = :443 )".
	sportOnlyRE = lazyRE(`^\(?\s*sport\s*(?:=|==|eq)\s*:(\d{1,5})\s*\)?$`)
)
