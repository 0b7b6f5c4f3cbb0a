package planner

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestSavedPlanKeepsPlanned: a saved plan carries what each change records
// (Change.Planned), which the plan's JSON rendering leaves out; apply of a
// saved plan applies it.
func TestSavedPlanKeepsPlanned(t *testing.T) {
	cfg := loadConfig(t, baseConfig)
	p := plan(t, cfg, nil, observed())
	if len(p.Changes) == 0 {
		t.Fatal("no changes")
	}
	for _, c := range p.Changes {
		if c.Action != Delete && c.Planned == nil {
			t.Errorf("%s %s %s has no Planned", c.Action, c.Kind, c.Address)
		}
	}
	var buf bytes.Buffer
	if err := WriteSaved(&buf, p, "test", time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "hunter2") {
		t.Error("the saved plan holds the password")
	}
	saved, err := ReadSaved(&buf)
	if err != nil {
		t.Fatal(err)
	}
	planned := func(cs []Change) (out []*Planned) {
		for _, c := range cs {
			out = append(out, c.Planned)
		}
		return out
	}
	if diff := cmp.Diff(planned(p.Changes), planned(saved.Plan.Changes)); diff != "" {
		t.Errorf("planned states read back (-written +read):\n%s", diff)
	}
	var js bytes.Buffer
	if err := WriteJSON(&js, p, nil); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(js.String(), "planned") {
		t.Error("plan -json shows the planned states, which SPEC §3 does not have")
	}
}

func TestReadSavedRefuses(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"format 1", `{"format_version": 1, "plan": {"changes": []}}`, "older sluice (saved-plan format 1)"},
		{"newer", `{"format_version": 3, "plan": {"changes": []}}`, "newer sluice"},
		{"not a plan", `{"format_version": 4, "terraform_version": "1.9"}`, "not a saved sluice plan"},
		{"planned lost", `{"format_version": 2, "plan": {"changes": [{"address": "x"}]}, "planned": []}`, "damaged saved plan"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadSaved(strings.NewReader(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ReadSaved: %v, want an error saying %q", err, tt.want)
			}
		})
	}
}
