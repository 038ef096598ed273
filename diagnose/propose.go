package diagnose

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/sockwarden/sockwarden/internal/sysval"
)

// ProposalID is the stable identity of a proposal: the first 12 hex digits
// of a SHA-256 over the host, the namespace, the finding kind, the subject
// and every change's key, current and proposed value, in order. The same
// facts always give the same id; any different current value (someone
// changed the sysctl meanwhile) gives a different one, so an approval of
// the old id no longer matches.
func ProposalID(host, netns, kind, subject string, changes []Change) string {
	h := sha256.New()
	field := func(s string) {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	field("sockwarden.proposal/v1")
	field(host)
	field(netns)
	field(kind)
	field(subject)
	for _, c := range changes {
		field(c.Key)
		// The normal form remediate compares live values in.
		field(sysval.Fold(c.Current))
		field(sysval.Fold(c.Proposed))
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}
