package webhooksecret

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-dev/sluice/state"
)

// Write replaces a secret whole, mode 0600 in a directory of mode 0700,
// and leaves no temporary file.
func TestWriteReplaces(t *testing.T) {
	b := state.NewLocal(filepath.Join(t.TempDir(), ".sluice", "state.json"))
	for _, secret := range []string{"whsec_old", "whsec_new"} {
		if err := Write(b, "stripe.billing", secret); err != nil {
			t.Fatal(err)
		}
		got, err := Read(b, "stripe.billing")
		if err != nil || got != secret {
			t.Fatalf("Read = %q, %v; want %q", got, err, secret)
		}
	}
	dir, _ := Dir(b)
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || es[0].Name() != "stripe.billing.whsec" {
		t.Errorf("secrets directory holds %v, want only stripe.billing.whsec", es)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "stripe.billing.whsec"): 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
}
