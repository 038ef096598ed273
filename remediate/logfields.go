package remediate

import (
	"encoding/json"

	"go.uber.org/zap"
)

// HostNetns is how logs, journal fields and metrics name the process's own
// network namespace (an empty path everywhere else): one spelling for one
// change, whichever component logs it.
const HostNetns = "host"

// NetnsName is the name of a namespace path in logs: HostNetns for "".
func NetnsName(ns string) string {
	if ns == "" {
		return HostNetns
	}
	return ns
}

// OutcomeFields are the log fields of one value of a settled change, the
// same for the agent and the CLI, so that journalctl finds an apply, a
// restore or a rollback by the same SOCKWARDEN_KEY/OLD/NEW/CHANGE/PROPOSAL/
// NETNS/STATE fields whoever made it.
func OutcomeFields(o Outcome, v Value) []zap.Field {
	return []zap.Field{zap.String("key", v.Key), zap.String("old", v.Old), zap.String("new", v.New),
		zap.String("proposal", o.Proposal), zap.String("change", o.Change), zap.String("approver", o.Approver),
		zap.String("reason", o.Reason), zap.String("netns", NetnsName(o.Netns)), zap.String("state", string(o.State))}
}

// legacyStates maps state spellings an older journal may hold to today's:
// "rolled_back" was the metrics label's spelling of rolled-back.
var legacyStates = map[State]State{"rolled_back": StateRolledBack}

// UnmarshalJSON reads a state, accepting the legacy spellings, so that a
// journal or store written with either form reads the same.
func (s *State) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return err
	}
	*s = State(str)
	if now, ok := legacyStates[*s]; ok {
		*s = now
	}
	return nil
}
