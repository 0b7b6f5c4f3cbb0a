package pg

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/sluice-dev/sluice/config"
)

// SSH keepalives: a bastion that does not answer one within
// keepaliveTimeout is taken for gone, so that database connections through
// it fail instead of hanging and the next connection opens a new tunnel.
const (
	keepaliveInterval = 30 * time.Second
	keepaliveTimeout  = 15 * time.Second
)

// defaultKnownHosts is where host keys are looked up when the source says
// nothing (config.Load always says something; a Source built in code may
// not).
const defaultKnownHosts = "~/.ssh/known_hosts"

// tunnelError is an SSH tunnel failure with what to do about it.
type tunnelError struct {
	msg  string
	hint string
	err  error // the cause, if any
}

func (e *tunnelError) Error() string {
	if e.err == nil {
		return e.msg
	}
	return e.msg + ": " + e.err.Error()
}

func (e *tunnelError) Unwrap() error { return e.err }

// tunnel is one SSH connection to a bastion, through which database
// connections are opened as direct-tcpip channels.
type tunnel struct {
	client  *ssh.Client
	bastion string        // host:port
	done    chan struct{} // closed when the SSH connection has ended
}

// openTunnel connects and authenticates to the bastion of st, checking its
// host key.
func openTunnel(ctx context.Context, st *config.SSHTunnel, dir string) (*tunnel, error) {
	port := st.Port
	if port == 0 {
		port = 22
	}
	bastion := net.JoinHostPort(st.Host, strconv.Itoa(port))
	auth, err := authMethods(st)
	if err != nil {
		return nil, err
	}
	hostKeys, err := newHostKeyChecker(st, dir, bastion)
	if err != nil {
		return nil, err
	}
	cfg := &ssh.ClientConfig{
		User:              st.User,
		Auth:              auth,
		HostKeyCallback:   hostKeys.check,
		HostKeyAlgorithms: hostKeys.algorithms,
	}

	nc, err := directDialer.DialContext(ctx, "tcp", bastion)
	if err != nil {
		return nil, &dialError{addr: bastion, toBastion: true, err: err}
	}
	// The SSH handshake has no context: bound it by ctx through the
	// connection's deadline.
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	conn, chans, reqs, err := ssh.NewClientConn(nc, bastion, cfg)
	stop()
	if err != nil {
		nc.Close()
		return nil, handshakeError(err, st, bastion, hostKeys)
	}
	_ = nc.SetDeadline(time.Time{})
	t := &tunnel{client: ssh.NewClient(conn, chans, reqs), bastion: bastion, done: make(chan struct{})}
	go func() {
		_ = t.client.Wait()
		close(t.done)
	}()
	go t.keepalive()
	return t, nil
}

// handshakeError explains why the SSH handshake with the bastion failed.
func handshakeError(err error, st *config.SSHTunnel, bastion string, hk *hostKeyChecker) error {
	if hk.err != nil {
		return hk.err
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return &dialError{addr: bastion, toBastion: true, err: fmt.Errorf("SSH handshake with the bastion timed out: %w", err)}
	}
	if strings.Contains(err.Error(), "unable to authenticate") {
		var how string
		switch {
		case st.PrivateKey != "" && st.Password != "":
			how = "private_key and password"
		case st.PrivateKey != "":
			how = "private_key"
		default:
			how = "password"
		}
		return &tunnelError{
			msg: fmt.Sprintf("ssh_tunnel: bastion %s refused user %q", bastion, st.User),
			hint: fmt.Sprintf("Check ssh_tunnel.user and ssh_tunnel.%s. For a key, its public half must be in ~%s/.ssh/authorized_keys on the bastion; for a password, the bastion must allow password authentication (PasswordAuthentication yes in sshd_config).",
				strings.ReplaceAll(how, " and ", " and ssh_tunnel."), st.User),
			err: err,
		}
	}
	return &tunnelError{
		msg:  fmt.Sprintf("ssh_tunnel: SSH handshake with bastion %s failed", bastion),
		hint: fmt.Sprintf("Check that %s runs an SSH server (ssh_tunnel.host and ssh_tunnel.port).", bastion),
		err:  err,
	}
}

// authMethods returns how to authenticate to the bastion: the private key,
// the password, or both.
func authMethods(st *config.SSHTunnel) ([]ssh.AuthMethod, error) {
	var auth []ssh.AuthMethod
	if st.PrivateKey != "" {
		signer, err := parsePrivateKey(st)
		if err != nil {
			return nil, err
		}
		auth = append(auth, ssh.PublicKeys(signer))
	}
	if st.Password != "" {
		pw := st.Password
		auth = append(auth, ssh.Password(pw),
			// Bastions that check passwords through PAM ask for them
			// with keyboard-interactive.
			ssh.KeyboardInteractive(func(_, _ string, questions []string, echos []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i, q := range questions {
					if !echos[i] && strings.Contains(strings.ToLower(q), "password") {
						answers[i] = pw
					}
				}
				return answers, nil
			}))
	}
	if len(auth) == 0 {
		return nil, &tunnelError{
			msg:  "ssh_tunnel has no credentials",
			hint: `Set ssh_tunnel.private_key (such as file("~/.ssh/id_ed25519")) or ssh_tunnel.password.`,
		}
	}
	return auth, nil
}

// parsePrivateKey parses the tunnel's private key, decrypting it with the
// passphrase when it is encrypted. Errors never quote the key or the
// passphrase.
func parsePrivateKey(st *config.SSHTunnel) (ssh.Signer, error) {
	key := []byte(st.PrivateKey)
	signer, err := ssh.ParsePrivateKey(key)
	var missing *ssh.PassphraseMissingError
	switch {
	case err == nil:
		return signer, nil
	case errors.As(err, &missing):
		if st.Passphrase == "" {
			return nil, &tunnelError{
				msg:  "ssh_tunnel.private_key is encrypted and no passphrase is set",
				hint: `Set ssh_tunnel.passphrase (such as var.ssh_passphrase, a sensitive variable).`,
			}
		}
	default:
		return nil, &tunnelError{
			msg:  "ssh_tunnel.private_key is not a private key sluice can read",
			hint: `Give the private key file's contents in OpenSSH or PEM format, such as file("~/.ssh/id_ed25519") (not the .pub file).`,
			err:  err,
		}
	}
	signer, err = ssh.ParsePrivateKeyWithPassphrase(key, []byte(st.Passphrase))
	if errors.Is(err, x509.IncorrectPasswordError) {
		return nil, &tunnelError{
			msg:  "ssh_tunnel.passphrase does not decrypt ssh_tunnel.private_key (wrong passphrase)",
			hint: "Set the passphrase the key was encrypted with; `ssh-keygen -y -f KEYFILE` asks for it and shows whether it is right.",
		}
	}
	if err != nil {
		return nil, &tunnelError{
			msg:  "ssh_tunnel.private_key cannot be decrypted",
			hint: "Check the key's format; `ssh-keygen -y -f KEYFILE` shows whether OpenSSH can read it.",
			err:  err,
		}
	}
	return signer, nil
}

// probeKey is a host key no known_hosts file holds: checking it reveals
// which keys a file does hold for a host.
var probeKey = sync.OnceValue(func() ssh.PublicKey {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return k
})

// hostKeyChecker checks the bastion's host key against known_hosts and
// keeps the explained error of a failed check, which the SSH handshake
// would otherwise bury.
type hostKeyChecker struct {
	path     string // the known_hosts file, resolved
	missing  bool   // the file does not exist
	insecure bool
	callback ssh.HostKeyCallback
	// algorithms are the host key algorithms of the keys known for the
	// bastion: with its own preference (ECDSA before Ed25519) the client
	// could negotiate a key of another type and then find it unknown.
	algorithms []string
	err        error
}

func newHostKeyChecker(st *config.SSHTunnel, dir, bastion string) (*hostKeyChecker, error) {
	if st.InsecureIgnoreHostKey {
		return &hostKeyChecker{insecure: true, callback: ssh.InsecureIgnoreHostKey()}, nil
	}
	name := st.KnownHosts
	if name == "" {
		name = defaultKnownHosts
	}
	path, err := resolvePath(dir, name)
	if err != nil {
		return nil, &tunnelError{msg: "ssh_tunnel.known_hosts", err: err}
	}
	hk := &hostKeyChecker{path: path}
	var files []string
	switch _, err := os.Stat(path); {
	case err == nil:
		files = []string{path}
	case errors.Is(err, os.ErrNotExist):
		// An empty list: the unknown-key error then says which line to
		// put in the file.
		hk.missing = true
	default:
		return nil, &tunnelError{msg: "ssh_tunnel.known_hosts cannot be read", err: err}
	}
	hk.callback, err = knownhosts.New(files...)
	if err != nil {
		return nil, &tunnelError{
			msg:  fmt.Sprintf("ssh_tunnel.known_hosts: %s cannot be parsed", path),
			hint: "Fix or remove the line named; each line is `HOSTS KEYTYPE BASE64KEY`, as ssh-keyscan prints.",
			err:  err,
		}
	}
	var ke *knownhosts.KeyError
	if errors.As(hk.callback(bastion, tunnelAddr{"tcp", bastion}, probeKey()), &ke) {
		for _, k := range ke.Want {
			for _, a := range algorithmsFor(k.Key.Type()) {
				if !slices.Contains(hk.algorithms, a) {
					hk.algorithms = append(hk.algorithms, a)
				}
			}
		}
	}
	if len(hk.algorithms) == 0 {
		hk.algorithms = unknownHostAlgorithms
	}
	return hk, nil
}

// unknownHostAlgorithms is the preference for a bastion with no known key:
// OpenSSH's, so that the key an unknown-key error shows (and asks to add)
// is the one `ssh` and `ssh-keyscan` show first.
var unknownHostAlgorithms = []string{
	ssh.CertAlgoED25519v01, ssh.CertAlgoECDSA256v01, ssh.CertAlgoECDSA384v01, ssh.CertAlgoECDSA521v01,
	ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01,
	ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
	ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256,
}

// algorithmsFor lists the host key algorithms that use keys of a type.
func algorithmsFor(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

func (hk *hostKeyChecker) check(hostname string, remote net.Addr, key ssh.PublicKey) error {
	err := hk.callback(hostname, remote, key)
	if err == nil || hk.insecure {
		return err
	}
	hk.err = hk.explain(err, hostname, key)
	return hk.err
}

// explain turns a failed known_hosts check into a tunnelError that shows
// the key's fingerprint and the known_hosts line that would accept it.
func (hk *hostKeyChecker) explain(err error, hostname string, key ssh.PublicKey) error {
	fp := fmt.Sprintf("%s key %s", key.Type(), ssh.FingerprintSHA256(key))
	line := knownhosts.Line([]string{hostname}, key)
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case errors.As(err, &re):
		return &tunnelError{
			msg:  fmt.Sprintf("ssh_tunnel: bastion %s presented %s, which %s:%d marks @revoked", hostname, fp, re.Revoked.Filename, re.Revoked.Line),
			hint: "Refusing a revoked key; ask the bastion's administrators which key it should present.",
		}
	case errors.As(err, &ke) && len(ke.Want) == 0:
		where := hk.path
		if hk.missing {
			where += ", which does not exist"
		}
		return &tunnelError{
			msg: fmt.Sprintf("ssh_tunnel: the host key of bastion %s is not in known_hosts (%s): it presented %s", hostname, where, fp),
			hint: fmt.Sprintf("If that is the bastion's key (compare with `ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub` run on the bastion), add this line to %s:\n    %s",
				keyFileName(key.Type()), hk.path, line),
		}
	case errors.As(err, &ke):
		var known []string
		for _, k := range ke.Want {
			known = append(known, fmt.Sprintf("%s:%d has %s key %s", k.Filename, k.Line, k.Key.Type(), ssh.FingerprintSHA256(k.Key)))
		}
		return &tunnelError{
			msg: fmt.Sprintf("ssh_tunnel: the host key of bastion %s does not match known_hosts: it presented %s, but %s", hostname, fp, strings.Join(known, "; ")),
			hint: fmt.Sprintf("Someone may be posing as the bastion (a man-in-the-middle attack): do not connect until you know why the key differs. If the bastion's key changed legitimately, replace that line of %s with:\n    %s",
				hk.path, line),
		}
	default:
		return &tunnelError{msg: fmt.Sprintf("ssh_tunnel: checking the host key of bastion %s", hostname), err: err}
	}
}

// keyFileName is the part of sshd's host key file name for a key type.
func keyFileName(keyType string) string {
	switch {
	case keyType == ssh.KeyAlgoED25519:
		return "ed25519"
	case strings.HasPrefix(keyType, "ecdsa-"):
		return "ecdsa"
	case keyType == ssh.KeyAlgoRSA:
		return "rsa"
	default:
		return "*"
	}
}

// alive reports whether the SSH connection is still up.
func (t *tunnel) alive() bool {
	select {
	case <-t.done:
		return false
	default:
		return true
	}
}

func (t *tunnel) close() error {
	err := t.client.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// keepalive sends OpenSSH keepalives and closes the connection when the
// bastion stops answering.
func (t *tunnel) keepalive() {
	tick := time.NewTicker(keepaliveInterval)
	defer tick.Stop()
	for {
		select {
		case <-t.done:
			return
		case <-tick.C:
		}
		answered := make(chan error, 1)
		go func() {
			_, _, err := t.client.SendRequest("keepalive@openssh.com", true, nil)
			answered <- err
		}()
		select {
		case err := <-answered:
			if err != nil {
				t.client.Close()
				return
			}
		case <-time.After(keepaliveTimeout):
			t.client.Close()
			return
		case <-t.done:
			return
		}
	}
}

// dial opens a connection from the bastion to addr.
func (t *tunnel) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	ch, err := t.client.DialContext(ctx, network, addr)
	if err != nil {
		return nil, &dialError{addr: addr, bastion: t.bastion, err: err}
	}
	return newTunnelConn(ch, tunnelAddr{network, addr}), nil
}

// tunnelAddr is the address a tunnelled connection was opened to, as
// given: pgx opens cancel requests to a connection's RemoteAddr, which must
// therefore name the database as the bastion knows it.
type tunnelAddr struct{ network, addr string }

func (a tunnelAddr) Network() string { return a.network }
func (a tunnelAddr) String() string  { return a.addr }

// tunnelConn is an SSH channel with deadlines. pgx stops a blocked read or
// write by setting a deadline (context cancellation, connect_timeout), which
// SSH channels do not support; so the channel is copied to and from one
// end of an in-memory pipe, and the other end, which has deadlines, is what
// pgx uses.
type tunnelConn struct {
	net.Conn          // our end of the pipe
	ch       net.Conn // the SSH channel
	raddr    tunnelAddr
}

func newTunnelConn(ch net.Conn, raddr tunnelAddr) *tunnelConn {
	ours, theirs := net.Pipe()
	go func() {
		_, _ = io.Copy(theirs, ch)
		theirs.Close() // the database hung up: our reads see EOF
	}()
	go func() {
		_, _ = io.Copy(ch, theirs)
		ch.Close() // we closed our end
	}()
	return &tunnelConn{Conn: ours, ch: ch, raddr: raddr}
}

func (c *tunnelConn) RemoteAddr() net.Addr { return c.raddr }

func (c *tunnelConn) Close() error {
	err := c.Conn.Close()
	c.ch.Close()
	return err
}
