package pg

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"

	"github.com/jackc/pgservicefile"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-dev/sluice/config"
)

// sslMode returns the sslmode to lay over the connection string base, or
// "" to leave it to base or PGSSLMODE: the sslmode attribute when it was
// written, else base's sslmode, else PGSSLMODE, else "require". libpq's
// default, "prefer", would fall back to plaintext without a word, which a
// tool that copies production data must not do by default.
func sslMode(src *config.Source, base string) (string, error) {
	pg := src.Postgres
	if pg.SSLMode != "" && isSet(src, "sslmode") {
		if !validSSLMode(pg.SSLMode) {
			return "", fmt.Errorf("sslmode %q is not one of disable, allow, prefer, require, verify-ca, verify-full", pg.SSLMode)
		}
		return pg.SSLMode, nil
	}
	settings := connStringSettings(base)
	// "ssl=true" is the URL alias of sslmode=require.
	if _, ok := settings["sslmode"]; ok {
		return "", nil
	}
	if _, ok := settings["ssl"]; ok && isURL(base) {
		return "", nil
	}
	if os.Getenv("PGSSLMODE") != "" || serviceSetsSSLMode(settings) {
		return "", nil
	}
	return config.DefaultSSLMode, nil
}

func validSSLMode(m string) bool {
	switch m {
	case "disable", "allow", "prefer", "require", "verify-ca", "verify-full":
		return true
	}
	return false
}

// plaintextMode says why a connection made with cfg might go without TLS,
// or returns "" when every attempt uses TLS. pgx expresses sslmode as a TLS
// configuration per attempt (prefer: TLS, then a plaintext fallback; allow:
// the other way round), so this holds whichever setting chose the mode.
func plaintextMode(cfg *pgconn.Config) string {
	attempts := append([]*pgconn.FallbackConfig{{Host: cfg.Host, Port: cfg.Port, TLSConfig: cfg.TLSConfig}}, cfg.Fallbacks...)
	var plain, encrypted int
	for _, a := range attempts {
		if a.TLSConfig == nil {
			if network, _ := pgconn.NetworkAddress(a.Host, a.Port); network == "unix" {
				return fmt.Sprintf("host %s is a Unix socket, which never uses TLS", a.Host)
			}
			plain++
		} else {
			encrypted++
		}
	}
	switch {
	case plain == 0:
		return ""
	case encrypted == 0:
		return "sslmode disable never uses TLS"
	case attempts[0].TLSConfig != nil:
		return "sslmode prefer falls back to plaintext when TLS fails"
	default:
		return "sslmode allow tries plaintext first"
	}
}

// serviceSetsSSLMode reports whether the connection service the settings
// name (service, else PGSERVICE) sets sslmode in its service file
// (servicefile, else PGSERVICEFILE, else ~/.pg_service.conf). An unreadable
// file or unknown service is left for ParseConfig to report.
func serviceSetsSSLMode(settings map[string]string) bool {
	name := cmp.Or(settings["service"], os.Getenv("PGSERVICE"))
	if name == "" {
		return false
	}
	path := cmp.Or(settings["servicefile"], os.Getenv("PGSERVICEFILE"))
	if path == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return false
		}
		path = filepath.Join(home, ".pg_service.conf")
	}
	sf, err := pgservicefile.ReadServicefile(path)
	if err != nil {
		return false
	}
	svc, err := sf.GetService(name)
	if err != nil {
		return false
	}
	_, ok := svc.Settings["sslmode"]
	return ok
}
