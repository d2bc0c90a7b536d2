package spawn

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/arbor-go/arbor/internal/proctest"
	"github.com/hashicorp/go-hclog"
)

// scheduled starts this test binary as a scheduler would start a job: not
// as its child actor, just a process with the credential in its
// environment.
func scheduled(t *testing.T, env ...string) (*exec.Cmd, *proctest.Buffer) {
	t.Helper()
	return startScheduled(t, exec.Command(self(t)), env...)
}

// startScheduled starts cmd, which runs this test binary (here, or on
// another host), with env added to this process's environment.
func startScheduled(t *testing.T, cmd *exec.Cmd, env ...string) (*exec.Cmd, *proctest.Buffer) {
	t.Helper()
	cmd.Env = append(append(os.Environ(), "GORACE=atexit_sleep_ms=0"), env...)
	var stderr proctest.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &stderr
}

// TestDialIn: a process started elsewhere with a credential joins the tree
// over mutual TLS, is found in the registry, answers calls, and stops when
// asked.
func TestDialIn(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, cred := listenFor(t, ctx, "127.0.0.1:0", ListenOptions{}, "job-7")
	cmd, stderr := scheduled(t, cred.Env()...)
	j, err := l.Accept(ctx)
	if err != nil {
		t.Fatalf("accept: %v\n%s", err, stderr)
	}
	if j.ID() != cred.ID || j.ID().Name != "root.job-7" {
		t.Errorf("joined as %v, expected %v", j.ID(), cred.ID)
	}
	if got, err := echo.Call(ctx, j.Channel(), "over tls"); err != nil || got != "over tls" {
		t.Errorf("echo = %q, %v", got, err)
	}
	if e, err := Find(ctx, "root.job-7"); err != nil || e.PID != cmd.Process.Pid {
		t.Errorf("Find(root.job-7) = %+v, %v; want pid %d", e, err, cmd.Process.Pid)
	}
	if err := j.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("the joined process after its stop: %v\n%s", err, stderr)
	}
	if _, err := Find(ctx, "root.job-7"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the stopped child is still registered: %v", err)
	}
}

// TestDialInRefusals: a credential of another listener (which refuses this
// listener), another listener's certificate (which this listener refuses,
// with ErrCredential), a credential used already, and none at all are each
// refused; the refusals are logged, the process that tried exits with
// status 2, and the listener goes on.
func TestDialInRefusals(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var log proctest.Buffer
	l, cred := listenFor(t, ctx, "127.0.0.1:0", ListenOptions{Logger: hclog.New(&hclog.LoggerOptions{Output: &log})}, "job")
	_, foreign := listenFor(t, ctx, "127.0.0.1:0", ListenOptions{}, "intruder")
	refusedExit := func(what string, cmd *exec.Cmd, stderr *proctest.Buffer) {
		t.Helper()
		err := cmd.Wait()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 {
			t.Errorf("%s: the process exited with %v, want status 2\n%s", what, err, stderr)
		}
	}
	// The listener accepts all along, as a tree waiting for its jobs would.
	joined := make(chan *Joined, 1)
	go func() {
		j, err := l.Accept(ctx)
		if err != nil {
			t.Error(err)
		}
		joined <- j
	}()
	// A credential another listener issued, for this listener's address.
	env := foreign.Env()
	env[0] = connectEnv + "=" + l.Addr()
	cmd, stderr := scheduled(t, env...)
	refusedExit("another listener's credential", cmd, stderr)
	// Another listener's certificate, from a process that trusts this
	// listener's authority (no secret): this listener refuses it.
	cmd, stderr = scheduled(t, connectEnv+"="+l.Addr(), credentialEnv+"="+foreignCertificate(cred, foreign))
	refusedExit("another listener's certificate", cmd, stderr)
	// No credential at all.
	cmd, stderr = scheduled(t, connectEnv+"="+l.Addr())
	refusedExit("no credential", cmd, stderr)
	if !strings.Contains(stderr.String(), credentialEnv) {
		t.Errorf("without a credential the process says %q", stderr)
	}
	// The right one joins, once.
	cmd, _ = scheduled(t, cred.Env()...)
	j := <-joined
	if j == nil {
		t.FailNow()
	}
	replay, replayErr := scheduled(t, cred.Env()...)
	accepted := make(chan error, 1)
	actx, stopAccept := context.WithCancel(ctx)
	go func() { _, err := l.Accept(actx); accepted <- err }()
	refusedExit("a credential used already", replay, replayErr)
	stopAccept()
	if err := <-accepted; !errors.Is(err, context.Canceled) {
		t.Errorf("Accept after the refusals: %v, want it still waiting until cancelled", err)
	}
	if err := j.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	// The listener logs a refusal once the handshake has failed on its
	// side, which may be after the process has gone.
	proctest.Eventually(t, 10*time.Second, "the refusals in the listener's log", func() bool {
		return strings.Count(log.String(), "refused a dial-in") >= 2 && strings.Contains(log.String(), "refused this listener")
	})
	if !strings.Contains(log.String(), ErrCredential.Error()) {
		t.Errorf("the refusal of another listener's certificate does not give ErrCredential:\n%s", log.String())
	}
	if !strings.Contains(log.String(), "used already") {
		t.Errorf("the replay's refusal does not say so:\n%s", log.String())
	}
}

// TestDialInSilentClient: a connection that says nothing (a probe) holds up
// neither a child that dials in meanwhile nor Close.
func TestDialInSilentClient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := Listen(ctx, "127.0.0.1:0", ListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	silent, err := net.Dial("tcp", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	cred, err := l.Expect("job")
	if err != nil {
		t.Fatal(err)
	}
	cmd, stderr := scheduled(t, cred.Env()...)
	// Within the handshake's bound, which the silent client would use up
	// if the listener admitted one connection at a time.
	actx, stop := context.WithTimeout(ctx, DefaultHandshakeTimeout/2)
	defer stop()
	j, err := l.Accept(actx)
	if err != nil {
		t.Fatalf("a child behind a silent connection did not join: %v\n%s", err, stderr)
	}
	if err := j.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	proctest.Within(t, 5*time.Second, "Close with a silent connection open", func() { l.Close() })
	if _, err := l.Accept(ctx); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v", err)
	}
}

// listenFor listens on addr for the rest of the test, expecting one child
// named name, whose credential it returns.
func listenFor(t *testing.T, ctx context.Context, addr string, opts ListenOptions, name string) (*Listener, *Credential) {
	t.Helper()
	l, err := Listen(ctx, addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	cred, err := l.Expect(name)
	if err != nil {
		t.Fatal(err)
	}
	return l, cred
}

// foreignCertificate is a credential (as ARBOR_CREDENTIAL) that trusts the
// authority of own's listener but presents the certificate another
// listener issued in foreign: that listener refuses it.
func foreignCertificate(own, foreign *Credential) string {
	authority, _ := splitAuthority(own.bundle)
	_, cert := splitAuthority(foreign.bundle)
	return base64.StdEncoding.EncodeToString(append(append([]byte(nil), authority...), cert...))
}

// splitAuthority splits a credential's bundle into the authority's
// certificate, which comes first, and the child's certificate and key.
func splitAuthority(bundle []byte) (authority, child []byte) {
	_, child = pem.Decode(bundle)
	return bundle[:len(bundle)-len(child)], child
}
