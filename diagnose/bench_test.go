package diagnose

import (
	"encoding/json"
	"io"
	"os"
	"testing"

	"github.com/sockwarden/sockwarden/sample"
)

// BenchmarkRun: diagnosing a captured lab series (go test ./diagnose
// -run '^$' -bench . -benchmem). Run is pure and cheap next to taking the
// samples: the agent may call it on every tick.
func BenchmarkRun(b *testing.B) {
	for _, name := range []string{"somaxconn-capped", "ephemeral-ports"} {
		raw, err := os.ReadFile("testdata/series/" + name + ".json")
		if err != nil {
			b.Fatal(err)
		}
		var s []*sample.Sample
		if err := json.Unmarshal(raw, &s); err != nil {
			b.Fatal(err)
		}
		c := cfg()
		b.Run(name+"/Run", func(b *testing.B) {
			for b.Loop() {
				Run(s, c)
			}
		})
		r := Run(s, c)
		b.Run(name+"/WriteMarkdown", func(b *testing.B) {
			for b.Loop() {
				_ = WriteMarkdown(io.Discard, r)
			}
		})
	}
}
