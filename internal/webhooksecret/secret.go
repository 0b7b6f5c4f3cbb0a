// Package webhooksecret keeps the signing secrets of the webhook endpoints
// that apply registers. Stripe reveals an endpoint's secret only once, in
// the response that creates it, and the secret must never reach the state
// file, a plan file or a log; so apply writes it to a file of its own
// beside the local state, and the runner's receiver reads it from there:
//
//	<state dir>/secrets/<source address>.whsec   mode 0600, directory 0700
//
// (.sluice/secrets/stripe.billing.whsec by default). The postgres state
// backend has no directory of its own, so it keeps no secrets: sources
// whose state is in PostgreSQL set signing_secret in the webhook block,
// which always wins when set.
package webhooksecret

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sluice-dev/sluice/internal/atomicfile"
	"github.com/sluice-dev/sluice/state"
)

// ErrNoStore reports that the state backend keeps no secrets (postgres).
var ErrNoStore = errors.New("the postgres state backend keeps no webhook signing secrets: set signing_secret in the webhook block")

// Dir is the directory the backend's secrets are kept in; ok is false for
// backends that keep none.
func Dir(b state.Backend) (dir string, ok bool) {
	l, isLocal := b.(*state.Local)
	if !isLocal {
		return "", false
	}
	return filepath.Join(filepath.Dir(l.Path()), "secrets"), true
}

// path is the file of a source's secret.
func path(b state.Backend, source string) (string, error) {
	dir, ok := Dir(b)
	if !ok {
		return "", ErrNoStore
	}
	if source == "" || strings.ContainsAny(source, `/\`+"\x00") || strings.HasPrefix(source, ".") {
		return "", fmt.Errorf("invalid source address %q for a secret file", source)
	}
	return filepath.Join(dir, source+".whsec"), nil
}

// Read returns the stored secret of a source, "" when none is stored (or
// the backend keeps none).
func Read(b state.Backend, source string) (string, error) {
	p, err := path(b, source)
	if errors.Is(err, ErrNoStore) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the webhook signing secret of %s: %w", source, err)
	}
	return strings.TrimSpace(string(data)), nil
}

// Write stores a source's secret, replacing any: a synced temporary file of
// mode 0600, renamed into place, the directory synced, so that a crash
// leaves the old secret or the new one.
func Write(b state.Backend, source, secret string) error {
	p, err := path(b, source)
	if err != nil {
		return err
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create the secrets directory %s: %w", dir, err)
	}
	if err := atomicfile.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		return fmt.Errorf("store the webhook signing secret of %s in %s: %w", source, dir, err)
	}
	return nil
}

// Remove deletes a source's stored secret; none stored is not an error.
func Remove(b state.Backend, source string) error {
	p, err := path(b, source)
	if errors.Is(err, ErrNoStore) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the webhook signing secret of %s: %w", source, err)
	}
	return nil
}
