package providers

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/config"
)

type fakeSource struct{ Source }

type fakeResources struct{ ResourceManager }

// TestRegistry: what a source type registers is what callers get, and a
// type without a capability says so.
func TestRegistry(t *testing.T) {
	ctx := context.Background()
	Register("fake_push", Type{
		Open:          func(context.Context, *config.Source) (Source, error) { return fakeSource{}, nil },
		WebhookEvents: func(tables []string) []string { return []string{"ev." + strings.Join(tables, ",")} },
	})
	Register("fake_db", Type{
		Open:      func(context.Context, *config.Source) (Source, error) { return nil, errors.New("no server") },
		Resources: func(context.Context, *config.Source) (ResourceManager, error) { return fakeResources{}, nil },
	})
	if !slices.Contains(Types(), "fake_push") || !slices.Contains(Types(), "fake_db") {
		t.Errorf("Types() = %v", Types())
	}
	if s, err := Open(ctx, &config.Source{Type: "fake_push"}); err != nil || s == nil {
		t.Errorf("Open(fake_push) = %v, %v", s, err)
	}
	if _, err := Open(ctx, &config.Source{Type: "fake_db"}); err == nil || err.Error() != "no server" {
		t.Errorf("Open(fake_db) err = %v, want the factory's", err)
	}
	if _, err := Open(ctx, &config.Source{Type: "nope"}); err == nil || !strings.Contains(err.Error(), `"nope" is not available`) {
		t.Errorf("Open(nope) err = %v", err)
	}
	if rm, err := OpenResources(ctx, &config.Source{Type: "fake_db"}); err != nil || rm == nil {
		t.Errorf("OpenResources(fake_db) = %v, %v", rm, err)
	}
	if _, err := OpenResources(ctx, &config.Source{Type: "fake_push"}); err == nil || !strings.Contains(err.Error(), "fake_push sources have no publication or slot") {
		t.Errorf("OpenResources(fake_push) err = %v", err)
	}
	if got := WebhookEvents("fake_push", []string{"a", "b"}); !slices.Equal(got, []string{"ev.a,b"}) {
		t.Errorf("WebhookEvents(fake_push) = %v", got)
	}
	for _, typ := range []string{"fake_db", "nope"} {
		if got := WebhookEvents(typ, []string{"a"}); got != nil {
			t.Errorf("WebhookEvents(%s) = %v, want none", typ, got)
		}
	}
}

func TestChecksValid(t *testing.T) {
	tests := []struct {
		checks []Check
		want   bool
	}{
		{nil, true},
		{[]Check{{OK: true}, {OK: false, Warning: true}}, true},
		{[]Check{{OK: true}, {OK: false}}, false},
	}
	for _, tt := range tests {
		if got := ChecksValid(tt.checks); got != tt.want {
			t.Errorf("ChecksValid(%+v) = %v, want %v", tt.checks, got, tt.want)
		}
	}
}
