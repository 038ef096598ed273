package journalzap

import (
	"errors"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

type entry struct {
	Msg  string
	Pri  journal.Priority
	Vars map[string]string
}

func recorder() (*[]entry, SendFunc) {
	var got []entry
	return &got, func(m string, p journal.Priority, v map[string]string) error {
		got = append(got, entry{m, p, v})
		return nil
	}
}

func TestCoreFields(t *testing.T) {
	tests := []struct {
		name string
		log  func(l *zap.Logger)
		want []entry
	}{
		{
			name: "a kernel change is one entry with its fields",
			log: func(l *zap.Logger) {
				l.Named("remediate").Info("sysctl changed",
					zap.String("key", "net.core.somaxconn"), zap.String("old", "128"), zap.String("new", "1024"),
					zap.String("proposal", "p-1a2b"), zap.String("approver", "alice"), zap.String("reason", "accept queue overflow on 0.0.0.0:8080"))
			},
			want: []entry{{
				Msg: `sysctl changed approver=alice key=net.core.somaxconn new=1024 old=128 proposal=p-1a2b reason="accept queue overflow on 0.0.0.0:8080"`,
				Pri: journal.PriInfo,
				Vars: map[string]string{
					"SOCKWARDEN_KEY": "net.core.somaxconn", "SOCKWARDEN_OLD": "128", "SOCKWARDEN_NEW": "1024",
					"SOCKWARDEN_PROPOSAL": "p-1a2b", "SOCKWARDEN_APPROVER": "alice",
					"SOCKWARDEN_REASON": "accept queue overflow on 0.0.0.0:8080",
					"SOCKWARDEN_LOGGER": "remediate", "SYSLOG_IDENTIFIER": "sockwarden",
				},
			}},
		},
		{
			name: "context fields, typed values and levels",
			log: func(l *zap.Logger) {
				l.With(zap.String("netns", "/run/netns/a")).Warn("slow sample",
					zap.Duration("took", 1500*time.Millisecond), zap.Int("sockets", 150000), zap.Bool("full", true),
					zap.Error(errors.New("boom")), zap.Strings("missing", []string{"kmsg", "fd"}))
			},
			want: []entry{{
				Msg: `slow sample error=boom full=true missing=kmsg,fd netns=/run/netns/a sockets=150000 took=1.5s`,
				Pri: journal.PriWarning,
				Vars: map[string]string{
					"SOCKWARDEN_NETNS": "/run/netns/a", "SOCKWARDEN_TOOK": "1.5s", "SOCKWARDEN_SOCKETS": "150000",
					"SOCKWARDEN_FULL": "true", "SOCKWARDEN_ERROR": "boom", "SOCKWARDEN_MISSING": "kmsg,fd",
					"SYSLOG_IDENTIFIER": "sockwarden",
				},
			}},
		},
		{
			name: "below the level nothing is sent",
			log:  func(l *zap.Logger) { l.Debug("noise") },
			want: nil,
		},
		{
			name: "error priority",
			log:  func(l *zap.Logger) { l.Error("apply failed") },
			want: []entry{{Msg: "apply failed", Pri: journal.PriErr, Vars: map[string]string{"SYSLOG_IDENTIFIER": "sockwarden"}}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, send := recorder()
			tc.log(zap.New(NewWithSender(zapcore.InfoLevel, "sockwarden", send)))
			if diff := cmp.Diff(tc.want, *got); diff != "" {
				t.Errorf("journal entries (-want +got):\n%s", diff)
			}
		})
	}
}

// With must not leak fields into the parent logger.
func TestWithIsolated(t *testing.T) {
	got, send := recorder()
	parent := zap.New(NewWithSender(zapcore.InfoLevel, "", send))
	parent.With(zap.String("key", "a")).Info("child")
	parent.Info("parent")
	if len(*got) != 2 {
		t.Fatalf("got %d entries", len(*got))
	}
	if _, ok := (*got)[1].Vars["SOCKWARDEN_KEY"]; ok {
		t.Errorf("parent entry carries the child's field: %v", (*got)[1].Vars)
	}
}

func TestFieldName(t *testing.T) {
	for in, want := range map[string]string{
		"key": "SOCKWARDEN_KEY", "proposal_id": "SOCKWARDEN_PROPOSAL_ID", "listener.local": "SOCKWARDEN_LISTENER_LOCAL",
		"Send-Q": "SOCKWARDEN_SEND_Q",
	} {
		if got := FieldName(in); got != want {
			t.Errorf("FieldName(%q) = %q, want %q", in, got, want)
		}
	}
}
