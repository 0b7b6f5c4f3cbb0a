package main

import (
	"path/filepath"
	"testing"

	"github.com/sluice-dev/sluice/state"
)

// otherBackend is a state backend with no directory of its own, as the
// postgres backend is.
type otherBackend struct{ state.Backend }

// TestJournalDir: the webhook journals are beside the local state file,
// wherever it is, and under the configuration's .sluice with a backend
// that has no directory.
func TestJournalDir(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    state.Backend
		want string
	}{
		{"default local", state.NewLocal("/cfg/.sluice/state.json"), "/cfg/.sluice/webhooks"},
		{"local elsewhere", state.NewLocal("/var/lib/sluice/prod.json"), "/var/lib/sluice/webhooks"},
		{"postgres", otherBackend{}, filepath.Join("/cfg", ".sluice", "webhooks")},
	} {
		if got := journalDir(tc.b, "/cfg"); got != tc.want {
			t.Errorf("%s: journalDir = %q, want %q", tc.name, got, tc.want)
		}
	}
}
