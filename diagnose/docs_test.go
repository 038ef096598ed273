package diagnose

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/sockwarden/sockwarden/config"
)

// TestRulesDocumented keeps docs/rules.md in step with Rules and the
// diagnose config section.
func TestRulesDocumented(t *testing.T) {
	b, err := os.ReadFile("../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, r := range Rules {
		if !strings.Contains(doc, "## "+r.Name+" (kind") {
			t.Errorf("docs/rules.md has no section for rule %q", r.Name)
		}
		for _, k := range r.Kinds {
			if !strings.Contains(doc, "`"+k+"`") {
				t.Errorf("docs/rules.md does not name kind %q", k)
			}
		}
		if r.Condition == "" || r.Why == "" || len(r.Kinds) == 0 || len(r.Sides) == 0 {
			t.Errorf("rule %q lacks a condition, an explanation, kinds or sides", r.Name)
		}
		set := 0
		for _, f := range []bool{r.Counters != nil, r.Pile != nil, r.Focused != nil} {
			if f {
				set++
			}
		}
		if set != 1 || (r.Confirm == ConfirmCounters) != (r.Counters != nil) {
			t.Errorf("rule %q: exactly one of Counters, Pile and Focused must be set, matching Confirm", r.Name)
		}
	}
	for _, k := range config.Keys() {
		if strings.HasPrefix(k, "diagnose.") && !strings.Contains(doc, "`"+k+"`") {
			t.Errorf("docs/rules.md does not document %s", k)
		}
	}
}

// TestReportSchemaDocumented: every JSON field of the report types has a
// row in docs/report-schema.md.
func TestReportSchemaDocumented(t *testing.T) {
	b, err := os.ReadFile("../docs/report-schema.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, v := range []any{Report{}, Finding{}, Proposal{}, Change{}, Verification{}, SymptomAnswer{}} {
		rt := reflect.TypeOf(v)
		for i := 0; i < rt.NumField(); i++ {
			name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			if !strings.Contains(doc, "| `"+name+"` |") {
				t.Errorf("docs/report-schema.md has no row for %s.%s (%q)", rt.Name(), rt.Field(i).Name, name)
			}
		}
	}
}
