package pg

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/sluice-dev/sluice/config"
	"github.com/sluice-dev/sluice/internal/pgtest"
)

const (
	sshdPath       = "/usr/sbin/sshd"
	sshPassphrase  = "key-Passphrase-4c1f"
	sshPasswordPw  = "ssh-Password-93ad0e"
	sshWrongPhrase = "not-the-Passphrase-77"
	sshWrongPw     = "not-the-Password-5512"
	// sshUserPrefix and the test process's pid name the throwaway OS user
	// for password authentication: sshd checks passwords against
	// /etc/shadow, and root's password is not ours to change.
	sshUserPrefix = "sluicetest"
)

// testSSHD is a throwaway OpenSSH server on a loopback port, with host
// keys of two types (Ed25519 and ECDSA: the client prefers ECDSA, so a
// known_hosts with only the Ed25519 key checks that the client asks for the
// type it knows), an authorized key for keyUser, and password
// authentication for passwordUser.
type testSSHD struct {
	addr         string // 127.0.0.1:PORT
	hostKey      ssh.PublicKey
	keyUser      string
	clientKey    []byte // PEM, unencrypted
	encryptedKey []byte // PEM, encrypted with sshPassphrase
	passwordUser string
	dir          string
}

var sshdOnce struct {
	sync.Once
	err error
}

// ensureSSHD installs the OpenSSH server when it is missing, with the
// script `make test` also runs.
func ensureSSHD(t *testing.T) {
	t.Helper()
	sshdOnce.Do(func() {
		if _, err := os.Stat(sshdPath); err == nil {
			return
		}
		out, err := exec.Command("bash", "../../scripts/ensure-sshd.sh").CombinedOutput()
		if err != nil {
			sshdOnce.err = fmt.Errorf("scripts/ensure-sshd.sh: %v\n%s", err, out)
		}
	})
	if sshdOnce.err != nil {
		t.Fatal(sshdOnce.err)
	}
}

// startSSHD starts sshd for the test; it is stopped when the test ends.
func startSSHD(t *testing.T) *testSSHD {
	t.Helper()
	ensureSSHD(t)
	if os.Geteuid() != 0 {
		t.Fatal("the SSH tunnel tests run sshd, which must run as root (as CI does) to log users in")
	}
	// sshd insists on its privilege separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := &testSSHD{dir: dir, keyUser: "root", passwordUser: createSSHUser(t)}

	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecPriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	writeKey(t, filepath.Join(dir, "host_ed25519"), edPriv, "")
	writeKey(t, filepath.Join(dir, "host_ecdsa"), ecPriv, "")
	if s.hostKey, err = ssh.NewPublicKey(edPub); err != nil {
		t.Fatal(err)
	}

	clientPub, clientPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s.clientKey = marshalKey(t, clientPriv, "")
	s.encryptedKey = marshalKey(t, clientPriv, sshPassphrase)
	sshPub, err := ssh.NewPublicKey(clientPub)
	if err != nil {
		t.Fatal(err)
	}
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, ssh.MarshalAuthorizedKey(sshPub), 0o600); err != nil {
		t.Fatal(err)
	}

	logPath := filepath.Join(dir, "sshd.log")
	for attempt := 1; ; attempt++ {
		_, port := closedPort(t)
		s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		conf := filepath.Join(dir, "sshd_config")
		body := strings.Join([]string{
			"Port " + strconv.Itoa(port),
			"ListenAddress 127.0.0.1",
			"HostKey " + filepath.Join(dir, "host_ed25519"),
			"HostKey " + filepath.Join(dir, "host_ecdsa"),
			"PidFile " + filepath.Join(dir, "sshd.pid"),
			"AuthorizedKeysFile " + authorized,
			"UsePAM no",
			"StrictModes no",
			"PermitRootLogin yes",
			"PubkeyAuthentication yes",
			"PasswordAuthentication yes",
			"KbdInteractiveAuthentication no",
			"AllowTcpForwarding yes",
			"AllowAgentForwarding no",
			"X11Forwarding no",
			"LogLevel VERBOSE",
			"",
		}, "\n")
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		logFile, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(sshdPath, "-D", "-e", "-f", conf)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() {
			cmd.Wait()
			logFile.Close()
			close(exited)
		}()
		if waitListening(s.addr, exited) {
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-exited
				if t.Failed() {
					log, _ := os.ReadFile(logPath)
					t.Logf("sshd log:\n%s", log)
				}
			})
			return s
		}
		cmd.Process.Kill()
		<-exited
		log, _ := os.ReadFile(logPath)
		if attempt == 3 || !bytes.Contains(log, []byte("Address already in use")) {
			t.Fatalf("sshd did not start:\n%s", log)
		}
	}
}

// waitListening waits until addr accepts connections or the server exits.
func waitListening(addr string, exited <-chan struct{}) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// createSSHUser creates the throwaway OS user of password authentication,
// removed when the test ends. Its name has the process's pid, so that test
// runs side by side do not remove each other's user; users left behind by
// killed runs (whose pid is gone) are removed first.
func createSSHUser(t *testing.T) string {
	t.Helper()
	removeStaleSSHUsers(t)
	name := sshUserPrefix + strconv.Itoa(os.Getpid())
	if _, err := user.Lookup(name); err != nil {
		out, err := exec.Command("useradd", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/bin/sh", name).CombinedOutput()
		if err != nil {
			t.Fatalf("useradd: %v\n%s", err, out)
		}
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Errorf("userdel: %v\n%s", err, out)
		}
	})
	cmd := exec.Command("chpasswd")
	cmd.Stdin = strings.NewReader(name + ":" + sshPasswordPw + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chpasswd: %v\n%s", err, out)
	}
	return name
}

func removeStaleSSHUsers(t *testing.T) {
	t.Helper()
	passwd, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(passwd), "\n") {
		name, _, _ := strings.Cut(line, ":")
		pid, err := strconv.Atoi(strings.TrimPrefix(name, sshUserPrefix))
		if !strings.HasPrefix(name, sshUserPrefix) || err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			continue // that test run is still going
		}
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Logf("removing stale test user %s: %v\n%s", name, err, out)
		}
	}
}

func marshalKey(t *testing.T, key crypto.PrivateKey, passphrase string) []byte {
	t.Helper()
	var block *pem.Block
	var err error
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(key, "test")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(key, "test", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block)
}

func writeKey(t *testing.T, path string, key crypto.PrivateKey, passphrase string) {
	t.Helper()
	if err := os.WriteFile(path, marshalKey(t, key, passphrase), 0o600); err != nil {
		t.Fatal(err)
	}
}

// knownHosts writes a known_hosts file with lines and returns its path.
func knownHosts(t *testing.T, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// logBuffer collects what a test's logger writes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSSHTunnel connects through a real sshd to the package's cluster, with
// each way of authenticating and of checking the host key, and checks the
// failures a user can meet.
func TestSSHTunnel(t *testing.T) {
	home := isolateEnv(t)
	sshd := startSSHD(t)
	db := urlSource(t, pgtest.NewDB(t)).Postgres
	goodLine := knownhosts.Line([]string{sshd.addr}, sshd.hostKey)
	otherPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := ssh.NewPublicKey(otherPub)
	if err != nil {
		t.Fatal(err)
	}
	good := knownHosts(t, "# the bastion", goodLine)
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".ssh", "known_hosts"), []byte(goodLine+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrong := knownHosts(t, knownhosts.Line([]string{sshd.addr}, otherKey))
	empty := knownHosts(t)
	host, portStr, _ := net.SplitHostPort(sshd.addr)
	port, _ := strconv.Atoi(portStr)
	_, closedP := closedPort(t)
	_, silentP := silentServer(t)
	fp := ssh.FingerprintSHA256(sshd.hostKey)

	tunnel := func(mod func(*config.SSHTunnel)) *config.SSHTunnel {
		st := &config.SSHTunnel{Host: host, Port: port, User: sshd.keyUser, PrivateKey: string(sshd.clientKey), KnownHosts: good}
		if mod != nil {
			mod(st)
		}
		return st
	}
	tests := []struct {
		name string
		st   *config.SSHTunnel
		// dbPort replaces the database's port (a closed or silent one).
		dbPort  int
		timeout time.Duration
		// wantErr and wantHint are the error's text and hint ("" when the
		// connection must work); {ADDR} stands for the bastion's address, {DB}
		// for the database's, {FP} for the host key's fingerprint, {USER} for
		// the password user.
		wantErr, wantHint string
		wantLog           string
	}{
		{name: "private key", st: tunnel(nil)},
		{name: "encrypted private key with passphrase", st: tunnel(func(st *config.SSHTunnel) {
			st.PrivateKey, st.Passphrase = string(sshd.encryptedKey), sshPassphrase
		})},
		{name: "password", st: tunnel(func(st *config.SSHTunnel) {
			st.User, st.PrivateKey, st.Password = sshd.passwordUser, "", sshPasswordPw
		})},
		{name: "known_hosts under ~", st: tunnel(func(st *config.SSHTunnel) { st.KnownHosts = "~/.ssh/known_hosts" })},
		{name: "known_hosts by default ~/.ssh/known_hosts", st: tunnel(func(st *config.SSHTunnel) { st.KnownHosts = "" })},
		{name: "known_hosts relative to the config directory and hashed", st: tunnel(func(st *config.SSHTunnel) {
			st.KnownHosts = "hashed_known_hosts"
		})},
		{
			name: "insecure_ignore_host_key",
			st: tunnel(func(st *config.SSHTunnel) {
				st.KnownHosts, st.InsecureIgnoreHostKey = empty, true
			}),
			wantLog: "SSH host key of the bastion is not checked",
		},
		{
			name: "require_tls refuses a server without TLS",
			st: tunnel(func(st *config.SSHTunnel) {
				st.RequireTLS = true
			}),
			wantErr:  "tls error: server refused TLS connection",
			wantHint: `The server at {DB} does not accept TLS (ssl = off), but the sslmode of source postgres.test requires TLS. Turn TLS on at the server (ssl = on, with ssl_cert_file and ssl_key_file), or, only on a network you trust, set sslmode = "prefer" or "disable".`,
		},
		{
			name:    "unknown host key",
			st:      tunnel(func(st *config.SSHTunnel) { st.KnownHosts = empty }),
			wantErr: "dial error: ssh_tunnel: the host key of bastion {ADDR} is not in known_hosts (" + empty + "): it presented ssh-ed25519 key {FP}",
			wantHint: "If that is the bastion's key (compare with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` run on the bastion), add this line to " + empty + ":\n    " +
				goodLine,
		},
		{
			name:     "known_hosts missing",
			st:       tunnel(func(st *config.SSHTunnel) { st.KnownHosts = empty + ".missing" }),
			wantErr:  "dial error: ssh_tunnel: the host key of bastion {ADDR} is not in known_hosts (" + empty + ".missing, which does not exist): it presented ssh-ed25519 key {FP}",
			wantHint: "If that is the bastion's key (compare with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` run on the bastion), add this line to " + empty + ".missing:\n    " + goodLine,
		},
		{
			name:     "wrong known_hosts entry",
			st:       tunnel(func(st *config.SSHTunnel) { st.KnownHosts = wrong }),
			wantErr:  "dial error: ssh_tunnel: the host key of bastion {ADDR} does not match known_hosts: it presented ssh-ed25519 key {FP}, but " + wrong + ":1 has ssh-ed25519 key " + ssh.FingerprintSHA256(otherKey),
			wantHint: "Someone may be posing as the bastion (a man-in-the-middle attack): do not connect until you know why the key differs. If the bastion's key changed legitimately, replace that line of " + wrong + " with:\n    " + goodLine,
		},
		{
			name: "wrong passphrase",
			st: tunnel(func(st *config.SSHTunnel) {
				st.PrivateKey, st.Passphrase = string(sshd.encryptedKey), sshWrongPhrase
			}),
			wantErr:  "dial error: ssh_tunnel.passphrase does not decrypt ssh_tunnel.private_key (wrong passphrase)",
			wantHint: "Set the passphrase the key was encrypted with; `ssh-keygen -y -f KEYFILE` asks for it and shows whether it is right.",
		},
		{
			name:     "encrypted key without passphrase",
			st:       tunnel(func(st *config.SSHTunnel) { st.PrivateKey = string(sshd.encryptedKey) }),
			wantErr:  "dial error: ssh_tunnel.private_key is encrypted and no passphrase is set",
			wantHint: "Set ssh_tunnel.passphrase (such as var.ssh_passphrase, a sensitive variable).",
		},
		{
			name: "wrong password",
			st: tunnel(func(st *config.SSHTunnel) {
				st.User, st.PrivateKey, st.Password = sshd.passwordUser, "", sshWrongPw
			}),
			wantErr:  `dial error: ssh_tunnel: bastion {ADDR} refused user "{USER}": ssh: handshake failed: ssh: unable to authenticate, attempted methods [none password], no supported methods remain`,
			wantHint: "Check ssh_tunnel.user and ssh_tunnel.password. For a key, its public half must be in ~{USER}/.ssh/authorized_keys on the bastion; for a password, the bastion must allow password authentication (PasswordAuthentication yes in sshd_config).",
		},
		{
			name:     "bastion refuses connections",
			st:       tunnel(func(st *config.SSHTunnel) { st.Port = closedP }),
			wantErr:  "connect: connection refused",
			wantHint: fmt.Sprintf("Nothing accepts connections at 127.0.0.1:%d, the SSH bastion. Check ssh_tunnel.host and ssh_tunnel.port, that sshd runs there, and that no firewall rejects the connection.", closedP),
		},
		{
			name:     "database refuses the bastion",
			st:       tunnel(nil),
			dbPort:   closedP,
			wantErr:  `ssh: rejected: connect failed ("Connection refused")`,
			wantHint: "The bastion {ADDR} could not connect to {DB} (Connection refused). Check host and port of source postgres.test as the bastion sees them, that PostgreSQL runs there, and the firewalls, security groups and IP allow-lists between the bastion and the database.",
		},
		{
			name:     "database silent behind the bastion",
			st:       tunnel(nil),
			dbPort:   silentP,
			timeout:  500 * time.Millisecond,
			wantErr:  "timeout: context deadline exceeded",
			wantHint: "No answer from {DB} (through the SSH bastion) within 500ms. Check host and port of source postgres.test as the bastion sees them, and the firewalls, security groups and IP allow-lists between the bastion and the database. connect_timeout sets how long to wait.",
		},
	}
	// The hashed known_hosts file, as `ssh-keygen -H` writes it.
	cfgDir := t.TempDir()
	hashed := knownhosts.HashHostname(knownhosts.Normalize(sshd.addr)) + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshd.hostKey)))
	if err := os.WriteFile(filepath.Join(cfgDir, "hashed_known_hosts"), []byte(hashed+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	secrets := []string{sshPassphrase, sshPasswordPw, sshWrongPhrase, sshWrongPw}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pg := *db
			pg.SSHTunnel = tt.st
			if tt.dbPort != 0 {
				pg.Port = tt.dbPort
			}
			if tt.timeout != 0 {
				pg.ConnectTimeout = tt.timeout
			}
			if tt.st.RequireTLS {
				pg.SSLMode = "require"
			}
			src := pgSource(&pg)
			var logs logBuffer
			logger := slog.New(slog.NewTextHandler(&logs, nil))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			conn, err := Connect(ctx, src, WithConfigDir(cfgDir), WithLogger(logger))
			dbAddr := net.JoinHostPort(pg.Host, strconv.Itoa(pg.Port))
			expand := func(s string) string {
				return strings.NewReplacer("{ADDR}", sshd.addr, "{DB}", dbAddr, "{FP}", fp, "{USER}", sshd.passwordUser).Replace(s)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close(ctx)
				var one int
				if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
					t.Fatal(err)
				}
			} else {
				if err == nil {
					conn.Close(ctx)
					t.Fatal("connected")
				}
				var ce *ConnError
				if !errors.As(err, &ce) {
					t.Fatalf("error %T is not a *ConnError: %v", err, err)
				}
				if want := expand(tt.wantErr); !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q:\n%s", want, err)
				}
				if diff := cmp.Diff(expand(tt.wantHint), ce.Hint); diff != "" {
					t.Errorf("hint (-want +got):\n%s", diff)
				}
				for _, s := range secrets {
					if strings.Contains(err.Error(), s) {
						t.Errorf("error shows a secret:\n%s", err)
					}
				}
			}
			if got := logs.String(); (tt.wantLog == "") != (got == "") || !strings.Contains(got, tt.wantLog) {
				t.Errorf("log = %q, want %q", got, tt.wantLog)
			}
		})
	}
}

// TestSSHTunnelFollowHint adds the known_hosts line the unknown-key error
// proposes and connects.
func TestSSHTunnelFollowHint(t *testing.T) {
	isolateEnv(t)
	sshd := startSSHD(t)
	db := urlSource(t, pgtest.NewDB(t)).Postgres
	host, portStr, _ := net.SplitHostPort(sshd.addr)
	port, _ := strconv.Atoi(portStr)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	pg := *db
	pg.SSHTunnel = &config.SSHTunnel{Host: host, Port: port, User: sshd.keyUser, PrivateKey: string(sshd.clientKey), KnownHosts: kh}
	src := pgSource(&pg)
	ctx := context.Background()
	_, err := Connect(ctx, src)
	var ce *ConnError
	if !errors.As(err, &ce) {
		t.Fatalf("Connect: %v", err)
	}
	_, line, ok := strings.Cut(ce.Hint, "\n    ")
	if !ok {
		t.Fatalf("no known_hosts line in the hint:\n%s", ce.Hint)
	}
	if err := os.WriteFile(kh, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conn, err := Connect(ctx, src)
	if err != nil {
		t.Fatalf("with %q in known_hosts: %v", line, err)
	}
	conn.Close(ctx)
}

// TestDialerSharesTunnel opens several connections through one Dialer: one
// SSH connection carries them all, replication included; queries are
// cancelled through the tunnel; a dropped SSH connection is replaced; Close
// ends it.
func TestDialerSharesTunnel(t *testing.T) {
	isolateEnv(t)
	sshd := startSSHD(t)
	db := urlSource(t, pgtest.NewDB(t)).Postgres
	host, portStr, _ := net.SplitHostPort(sshd.addr)
	port, _ := strconv.Atoi(portStr)
	pg := *db
	pg.SSHTunnel = &config.SSHTunnel{Host: host, Port: port, User: sshd.keyUser, PrivateKey: string(sshd.clientKey), InsecureIgnoreHostKey: true}
	var logs logBuffer
	d := NewDialer(pgSource(&pg), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	ctx := context.Background()

	c1, err := d.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close(ctx)
	first := d.tunnel
	rc, err := d.ConnectReplication(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close(ctx)
	if _, err := rc.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll(); err != nil {
		t.Fatal(err)
	}
	c2, err := d.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d.tunnel != first || d.inUse != 3 {
		t.Errorf("three connections use tunnel %p (%d users), want the first one, %p, for all", d.tunnel, d.inUse, first)
	}
	c2.Close(ctx)
	if d.tunnel != first || d.inUse != 2 {
		t.Errorf("after closing one connection: tunnel %p with %d users, want %p with 2", d.tunnel, d.inUse, first)
	}
	if n := strings.Count(logs.String(), "not checked"); n != 1 {
		t.Errorf("the host key warning was logged %d times, want once:\n%s", n, logs.String())
	}

	// A statement timeout on the client's side cancels the query on the
	// server through the tunnel (pgx opens a cancel request to the
	// connection's remote address).
	qctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = c1.Exec(qctx, "SELECT pg_sleep(30)")
	if err == nil || time.Since(start) > 10*time.Second {
		t.Fatalf("pg_sleep(30) with a 300ms context: %v after %s", err, time.Since(start))
	}

	// The bastion drops the SSH connection: the next connection opens
	// another.
	first.client.Close()
	<-first.done
	c3, err := d.Connect(ctx)
	if err != nil {
		t.Fatalf("Connect after the SSH connection dropped: %v", err)
	}
	defer c3.Close(ctx)
	if d.tunnel == first || d.tunnel == nil {
		t.Error("the dropped SSH connection was not replaced")
	}

	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c3.Ping(ctx); err == nil {
		t.Error("a connection through the closed tunnel still works")
	}
	if _, err := d.Connect(ctx); err == nil || !strings.Contains(err.Error(), "the dialer is closed") {
		t.Errorf("Connect after Close: %v", err)
	}
}

// TestSSHTunnelTLS connects through the tunnel with verify-full: the
// certificate is checked against the database's host name as the bastion
// knows it ("localhost"), which the bastion resolves.
func TestSSHTunnelTLS(t *testing.T) {
	isolateEnv(t)
	pki := newPKI(t)
	c := startAuthCluster(t, pki)
	sshd := startSSHD(t)
	host, portStr, _ := net.SplitHostPort(sshd.addr)
	port, _ := strconv.Atoi(portStr)
	src := pgSource(&config.Postgres{
		Host: "localhost", Port: c.Port(), Database: "postgres", User: authRole, Password: authPassword,
		SSLMode: "verify-full", SSLRootCert: "ca.pem",
		SSHTunnel: &config.SSHTunnel{
			Host: host, Port: port, User: sshd.keyUser, PrivateKey: string(sshd.clientKey),
			KnownHosts: knownHosts(t, knownhosts.Line([]string{sshd.addr}, sshd.hostKey)), RequireTLS: true,
		},
	})
	ctx := context.Background()
	conn, err := Connect(ctx, src, WithConfigDir(pki.dir))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var ssl bool
	if err := conn.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil {
		t.Fatal(err)
	}
	if !ssl {
		t.Error("the connection through the tunnel does not use TLS")
	}
}

// TestConnectClosesItsTunnel checks that the one-shot Connect's SSH
// connection ends with the database connection.
func TestConnectClosesItsTunnel(t *testing.T) {
	isolateEnv(t)
	sshd := startSSHD(t)
	db := urlSource(t, pgtest.NewDB(t)).Postgres
	host, portStr, _ := net.SplitHostPort(sshd.addr)
	port, _ := strconv.Atoi(portStr)
	pg := *db
	pg.SSHTunnel = &config.SSHTunnel{
		Host: host, Port: port, User: sshd.keyUser, PrivateKey: string(sshd.clientKey),
		KnownHosts: knownHosts(t, knownhosts.Line([]string{sshd.addr}, sshd.hostKey)),
	}
	ctx := context.Background()
	conn, err := Connect(ctx, pgSource(&pg))
	if err != nil {
		t.Fatal(err)
	}
	if n := establishedTo(t, port); n != 1 {
		t.Errorf("%d SSH connections while connected, want 1", n)
	}
	conn.Close(ctx)
	deadline := time.Now().Add(5 * time.Second)
	for establishedTo(t, port) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the SSH connection outlived the database connection")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// establishedTo counts the established TCP connections to a port of
// 127.0.0.1 made from this machine (the client's side of each).
func establishedTo(t *testing.T, port int) int {
	t.Helper()
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("0100007F:%04X", port)
	n := 0
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		// local address, remote address, state (01: established)
		if len(f) > 3 && f[2] == want && f[3] == "01" {
			n++
		}
	}
	return n
}

// TestDialerClosesWhenIdle: connections of one Dialer (a provider's
// catalog connection and its reads) go through one SSH connection;
// CloseWhenIdle (the provider's Close) leaves a connection still running,
// and the SSH connection closes with the last of them.
func TestDialerClosesWhenIdle(t *testing.T) {
	isolateEnv(t)
	sshd := startSSHD(t)
	url := pgtest.NewDB(t)
	db := urlSource(t, url).Postgres
	host, portStr, _ := net.SplitHostPort(sshd.addr)
	port, _ := strconv.Atoi(portStr)
	pg := *db
	pg.SSHTunnel = &config.SSHTunnel{Host: host, Port: port, User: sshd.keyUser, PrivateKey: string(sshd.clientKey), InsecureIgnoreHostKey: true}
	ctx := context.Background()
	d := NewDialer(pgSource(&pg))
	catalog, err := d.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first := d.tunnel
	read, err := d.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d.tunnel != first || d.inUse != 2 {
		t.Errorf("the read uses tunnel %p (%d users), want the catalog's %p", d.tunnel, d.inUse, first)
	}
	d.CloseWhenIdle()
	catalog.Close(ctx)
	if err := read.Ping(ctx); err != nil {
		t.Errorf("a read's connection broke when the catalog connection closed: %v", err)
	}
	if d.tunnel != first || d.inUse != 1 {
		t.Errorf("after closing the catalog connection: tunnel %p with %d users; want the catalog's %p alone", d.tunnel, d.inUse, first)
	}
	read.Close(ctx)
	if d.tunnel != nil {
		t.Error("the dialer kept its SSH connection after its last connection closed")
	}
	select {
	case <-first.done:
	case <-time.After(10 * time.Second):
		t.Error("the SSH connection outlived the dialer's last connection")
	}
}
