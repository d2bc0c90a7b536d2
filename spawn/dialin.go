package spawn

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"sync"
	"time"

	"github.com/arbor-go/arbor/ipc"
	"github.com/arbor-go/arbor/protocol"
	"github.com/hashicorp/go-hclog"
	"github.com/vmihailenco/msgpack/v5"
)

// Dial-in (PROTOCOL.md §13.2): a process that a scheduler started (a Slurm
// job, a Kubernetes Job) joins a tree as a child of a Listener, over TCP
// with mutual TLS. The Listener mints, in memory, a certificate authority,
// its own certificate, and one client certificate per expected child; the
// child gets its credential from whoever starts it (ARBOR_CONNECT and
// ARBOR_CREDENTIAL in its environment) and uses it once.

const (
	connectEnv    = "ARBOR_CONNECT"
	credentialEnv = "ARBOR_CREDENTIAL"
	// listenerName is the name the listener's certificate is issued to,
	// whatever address a child reaches it by.
	listenerName = "arbor-listener"
)

// ErrCredential is why a dial-in was refused: a certificate this listener
// did not issue, one already used, or none.
var ErrCredential = errors.New("spawn: a dial-in without a valid one-time credential")

// ListenOptions configure a Listener.
type ListenOptions struct {
	// Functions is what the listener serves to the children that join.
	Functions *ipc.Table
	// Logger receives refusals and other diagnostics; nil discards them.
	Logger hclog.Logger
	// LogLevel is the children's log level (their logs stay on their
	// side: a scheduler keeps them); NoLevel means Info.
	LogLevel hclog.Level
	// Heartbeat is the period of the heartbeats to each child; zero means
	// DefaultLauncherHeartbeat, negative none.
	Heartbeat time.Duration
	// Advertise is the host:port the children dial, when it is not the
	// address the listener is bound to (one bound to 0.0.0.0, or behind
	// a NAT); empty means Addr.
	Advertise string
	// Lifetime bounds the certificates the listener mints, its own and
	// the credentials: a credential must be used, and the listener
	// restarted, within it. Zero means DefaultCredentialLifetime.
	Lifetime time.Duration
}

// DefaultCredentialLifetime is ListenOptions.Lifetime's default.
const DefaultCredentialLifetime = 7 * 24 * time.Hour

// Listener accepts children that dial in. It owns a goroutine that
// accepts connections and one per connection being admitted; Close waits
// for them.
type Listener struct {
	ln      net.Listener
	joins   chan *Joined  // admitted, for Accept
	closed  chan struct{} // closed by Close
	ctx     context.Context
	stopAll context.CancelFunc // ends the admissions in progress: Close
	wg      sync.WaitGroup
	opts    ListenOptions
	log     hclog.Logger
	parent  protocol.ActorID
	caPEM   []byte
	ca      *x509.Certificate
	caKey   *ecdsa.PrivateKey
	tlsConf *tls.Config

	mu       sync.Mutex
	expected map[string]*expected // by the client certificate's serial
}

type expected struct {
	id    protocol.ActorID
	state joinState
}

// joinState is where an expected child's one join is.
type joinState uint8

const (
	unused  joinState = iota
	joining           // its TLS handshake passed; the arbor handshake runs
	joined            // used: the credential joins no more
)

// Listen listens on addr (host:port; port 0 picks one) for children that
// dial in. ctx names the parent (the actor whose served call it is, or the
// root).
func Listen(ctx context.Context, addr string, opts ListenOptions) (*Listener, error) {
	if opts.Lifetime <= 0 {
		opts.Lifetime = DefaultCredentialLifetime
	}
	l := &Listener{opts: opts, log: opts.Logger, expected: map[string]*expected{}, parent: actingAs(ctx),
		joins: make(chan *Joined), closed: make(chan struct{})}
	l.ctx, l.stopAll = context.WithCancel(context.Background())
	if l.log == nil {
		l.log = hclog.NewNullLogger()
	}
	if err := l.mintAuthority(); err != nil {
		return nil, fmt.Errorf("spawn: dial-in credentials: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	l.ln = ln
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// Addr is the address the listener is bound to.
func (l *Listener) Addr() string { return l.ln.Addr().String() }

func (l *Listener) advertised() string {
	if l.opts.Advertise != "" {
		return l.opts.Advertise
	}
	return l.Addr()
}

// Close stops listening and admitting, and waits for the admissions in
// progress; a child admitted but not taken by Accept is let go (its
// channel closed). Children Accept returned are not affected.
func (l *Listener) Close() error {
	select {
	case <-l.closed:
		return nil
	default:
	}
	close(l.closed)
	l.stopAll()
	err := l.ln.Close()
	l.wg.Wait()
	return err
}

// acceptLoop admits each connection in a goroutine of its own, so that a
// client that says nothing holds up only itself (for the handshake's
// bound).
func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	for {
		raw, err := l.ln.Accept()
		if err != nil {
			return // closed
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			j, err := l.admit(raw)
			if err != nil {
				l.refused(raw.RemoteAddr(), err)
				return
			}
			select {
			case l.joins <- j:
			case <-l.closed:
				j.ch.Close()
				<-j.done
			}
		}()
	}
}

// refused logs a dial-in that did not join: at Warn when it presented no
// valid credential (ErrCredential), or refused this listener's certificate
// (its credential trusts another authority), at Debug when it hung up or
// timed out before it said anything (a probe, a port scan).
func (l *Listener) refused(from net.Addr, err error) {
	var ne net.Error
	var alert *net.OpError // the TLS alert the dial-in sent
	switch {
	case errors.Is(err, io.EOF) || errors.As(err, &ne) && ne.Timeout():
		l.log.Debug("a dial-in went away before joining", "from", from.String(), "error", err)
	case errors.As(err, &alert) && alert.Op == "remote error":
		l.log.Warn("a dial-in refused this listener: its credential is another listener's", "from", from.String(), "error", err)
	default:
		l.log.Warn("refused a dial-in", "from", from.String(), "error", err)
	}
}

func (l *Listener) mintAuthority() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{SerialNumber: newSerial(), Subject: pkix.Name{CommonName: "arbor dial-in CA"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(l.opts.Lifetime),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	if l.ca, err = x509.ParseCertificate(der); err != nil {
		return err
	}
	l.caKey, l.caPEM = key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	certPEM, keyPEM, _, err := l.issue(listenerName, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return err
	}
	server, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AddCert(l.ca)
	l.tlsConf = &tls.Config{Certificates: []tls.Certificate{server}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13}
	return nil
}

// issue makes a key and a certificate for name, signed by the authority,
// as PEM.
func (l *Listener) issue(name string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte, serial *big.Int, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: newSerial(), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(l.opts.Lifetime),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, l.ca, &key.PublicKey, l.caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), tmpl.SerialNumber, nil
}

func newSerial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// Credential is what one expected child needs to join: where, and the
// certificates and key it proves itself with. It is good for one join.
type Credential struct {
	ID     protocol.ActorID // the identity the child will have in the tree
	addr   string
	bundle []byte // PEM: the authority's certificate, the child's, its key
}

// Env is the credential as the child's environment takes it, for a
// scheduler's job script or a Kubernetes Secret.
func (c *Credential) Env() []string {
	return []string{connectEnv + "=" + c.addr, credentialEnv + "=" + base64.StdEncoding.EncodeToString(c.bundle)}
}

// Expect mints a one-time credential for a child that will join as name
// (under the listener's parent).
func (l *Listener) Expect(name string) (*Credential, error) {
	id := protocol.ActorID{Name: l.parent.Name + "." + name, UUID: protocol.NewUUID()}
	certPEM, keyPEM, serial, err := l.issue(id.UUID, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, err
	}
	bundle := append(append(append([]byte(nil), l.caPEM...), certPEM...), keyPEM...)
	l.mu.Lock()
	l.expected[serial.String()] = &expected{id: id}
	l.mu.Unlock()
	return &Credential{ID: id, addr: l.advertised(), bundle: bundle}, nil
}

// Joined is a child that dialed in: its channel, until it ends.
type Joined struct {
	id   protocol.ActorID
	ch   *ipc.Channel
	done chan struct{}
}

// ID is the child's identity in the tree.
func (j *Joined) ID() protocol.ActorID { return j.id }

// Channel is the channel to the child.
func (j *Joined) Channel() *ipc.Channel { return j.ch }

// Done is closed once the child's channel has ended and it has left the
// tree's registry.
func (j *Joined) Done() <-chan struct{} { return j.done }

// Stop asks the child to stop and waits, until ctx ends, for its channel
// to end; then it closes the channel in any case.
func (j *Joined) Stop(ctx context.Context) error {
	stopFunc.Call(ctx, j.ch, stopArgs{}) // the end of the channel is the answer that counts
	var err error
	select {
	case <-j.ch.Done():
	case <-ctx.Done():
		err = ctx.Err()
	}
	j.ch.Close()
	<-j.done
	return err
}

// Accept returns the next child that has dialed in with a valid credential
// and completed its handshake (its spec came in the listener's hello), or
// ctx's error. Dial-ins without a valid credential, or with one already
// used, are refused meanwhile (logged, with ErrCredential); each is
// admitted in a goroutine of its own, so none holds up another.
func (l *Listener) Accept(ctx context.Context) (*Joined, error) {
	select {
	case j := <-l.joins:
		return j, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// admit proves one connection and runs its handshake, within the
// handshake's bound or until Close.
func (l *Listener) admit(raw net.Conn) (*Joined, error) {
	ctx, cancel := context.WithTimeout(l.ctx, DefaultHandshakeTimeout)
	defer cancel()
	conn := tls.Server(raw, l.tlsConf)
	if err := conn.HandshakeContext(ctx); err != nil {
		conn.Close()
		var ve *tls.CertificateVerificationError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("%w: %v", ErrCredential, err)
		}
		return nil, err
	}
	leaf := conn.ConnectionState().PeerCertificates[0]
	l.mu.Lock()
	exp, ok := l.expected[leaf.SerialNumber.String()]
	state := unused
	if ok {
		state = exp.state
		if state == unused {
			exp.state = joining
		}
	}
	l.mu.Unlock()
	switch {
	case !ok:
		conn.Close()
		return nil, fmt.Errorf("%w: a certificate of this listener's that is no child's", ErrCredential)
	case state != unused:
		conn.Close()
		return nil, fmt.Errorf("%w: the credential of %s was used already", ErrCredential, exp.id.Name)
	}
	j, err := l.join(ctx, conn, exp.id)
	l.mu.Lock()
	if err == nil {
		exp.state = joined
	} else if !errors.As(err, new(*identityError)) {
		exp.state = unused // the child's own failure, or the network's: it may try again
	}
	l.mu.Unlock()
	return j, err
}

// join runs the arbor handshake with a child that proved itself, giving it
// its spec, and registers it in the tree.
func (l *Listener) join(ctx context.Context, conn *tls.Conn, id protocol.ActorID) (*Joined, error) {
	level := l.opts.LogLevel
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	beat := l.opts.Heartbeat
	if beat == 0 {
		beat = DefaultLauncherHeartbeat
	}
	beat = max(beat, 0)
	sp := spec{Actor: id, Parent: l.parent, LogLevel: level.String(), Transport: "connect", HeartbeatMS: heartbeatMS(beat), PeerSecret: secretOfTree()}
	helloSpec, err := msgpack.Marshal(&sp)
	if err != nil {
		conn.Close()
		return nil, err
	}
	funcs, err := l.opts.Functions.WithRuntime(treeFuncs...)
	if err != nil {
		conn.Close()
		return nil, err
	}
	ch, err := ipc.Open(ctx, conn, ipc.Options{Actor: l.parent, Initiator: true, Functions: funcs, Logger: l.log,
		HelloSpec: helloSpec, Heartbeat: beat})
	if err != nil {
		return nil, err
	}
	if ch.Peer().UUID != id.UUID {
		ch.Close()
		return nil, &identityError{got: ch.Peer(), want: id}
	}
	j := &Joined{id: id, ch: ch, done: make(chan struct{})}
	if err := register(ctx, Entry{Name: id.Name, UUID: id.UUID, Parent: l.parent.UUID, PID: int(ch.PeerPID())}, ch); err != nil &&
		!errors.Is(err, protocol.ErrUnknownFunction) {
		l.log.Warn("the joined child is not in the tree's registry", "child", id.Name, "error", err)
	}
	go func() { // owned by j: Done closes when it ends
		defer close(j.done)
		<-ch.Done()
		ctx, cancel := context.WithTimeout(context.Background(), registryTimeout)
		defer cancel()
		unregister(ctx, id.UUID)
	}()
	return j, nil
}

// dialIn is a child's end of a dial-in: TLS to ARBOR_CONNECT with the
// credential of ARBOR_CREDENTIAL, checked against the authority in it.
func dialIn(addr, credential string) (net.Conn, error) {
	bundle, err := base64.StdEncoding.DecodeString(credential)
	if err != nil || len(bundle) == 0 {
		return nil, fmt.Errorf("%s is not a credential (base64 PEM): %v", credentialEnv, err)
	}
	var caDER []byte
	var certPEM, keyPEM []byte
	for rest := bundle; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		switch {
		case b.Type == "CERTIFICATE" && caDER == nil:
			caDER = b.Bytes
		case b.Type == "CERTIFICATE":
			certPEM = pem.EncodeToMemory(b)
		case b.Type == "EC PRIVATE KEY":
			keyPEM = pem.EncodeToMemory(b)
		}
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("%s: the authority's certificate: %v", credentialEnv, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: the child's certificate and key: %v", credentialEnv, err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: DefaultHandshakeTimeout},
		Config: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: listenerName, MinVersion: tls.VersionTLS13}}
	return d.Dial("tcp", addr)
}

// connectSpec is the spec of a process started with ARBOR_CONNECT (and no
// ARBOR_SPEC): it dials in, and its identity comes in the listener's hello.
func connectSpec() (*spec, bool) {
	addr, ok := os.LookupEnv(connectEnv)
	if !ok {
		return nil, false
	}
	return &spec{Transport: "connect", Addr: addr, fromHello: true}, true
}

// startedAsActor reports whether this process was started as an actor, by
// its parent or to dial in.
func startedAsActor() bool {
	_, spec := os.LookupEnv(specEnv)
	_, connect := os.LookupEnv(connectEnv)
	return spec || connect
}
