// Package sshtest runs a real OpenSSH server for tests: on a loopback port,
// or inside a network namespace of its own joined to this one by a veth
// pair, so that a test can cut the link between the two "hosts". Keys are
// generated for each server; the client needs no ~/.ssh. A Namespace alone
// (NewNamespace) is such a second host without the server: a test runs
// its own programs there (Command).
//
// Tests that use it need root (sshd, network namespaces) and Debian's
// openssh-server; without them they skip, saying why, unless
// ARBOR_REQUIRE_SSHD=1 (CI) makes that a failure.
package sshtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const sshd = "/usr/sbin/sshd"

// Server is a running sshd.
type Server struct {
	Addr string // host address the client connects to
	Port int
	dir  string
	ns   *Namespace // where the server runs, if not on this host's loopback
}

// Options say where the server runs.
type Options struct {
	// Netns runs the server in a network namespace of its own, reached
	// over a veth pair (Cut takes the link down).
	Netns bool
}

var serial atomic.Int32

// Require skips t (or fails it under ARBOR_REQUIRE_SSHD=1) unless sshd,
// ssh and, for a namespace, ip can run here as root.
func Require(t testing.TB, netns bool) {
	t.Helper()
	why := ""
	switch {
	case os.Geteuid() != 0:
		why = "not root"
	case !executable(sshd):
		why = sshd + " is missing (Debian's openssh-server)"
	case lookPath("ssh") == "" || lookPath("ssh-keygen") == "":
		why = "ssh or ssh-keygen is missing (Debian's openssh-client)"
	case netns && lookPath("ip") == "":
		why = "ip is missing (Debian's iproute2)"
	}
	if why != "" {
		unavailable(t, why)
	}
}

// unavailable skips t, or fails it under ARBOR_REQUIRE_SSHD=1, saying why.
func unavailable(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("ARBOR_REQUIRE_SSHD") == "1" {
		t.Fatalf("a real sshd is required here (ARBOR_REQUIRE_SSHD=1), but %s", why)
	}
	t.Skipf("no real sshd: %s", why)
}

// Start runs a server for the rest of the test.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	Require(t, opts.Netns)
	s := &Server{dir: t.TempDir(), Addr: "127.0.0.1"}
	for _, key := range []string{"host_key", "client_key"} {
		run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(s.dir, key))
	}
	pub, err := os.ReadFile(filepath.Join(s.dir, "client_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "authorized_keys"), pub, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // sshd's privilege separation directory
		t.Fatal(err)
	}
	s.Port = 22
	if opts.Netns {
		s.ns = NewNamespace(t)
		s.Addr = s.ns.There
	} else {
		s.Port = freePort(t)
	}
	config := fmt.Sprintf(`Port %d
ListenAddress %s
HostKey %s
AuthorizedKeysFile %s
PidFile %s
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
ClientAliveInterval 1
ClientAliveCountMax 2
`, s.Port, s.Addr, filepath.Join(s.dir, "host_key"), filepath.Join(s.dir, "authorized_keys"), filepath.Join(s.dir, "sshd.pid"))
	cfg := filepath.Join(s.dir, "sshd_config")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	// sshd daemonizes (no -D): it is not this process's child, so tests'
	// checks for children left behind do not see it, and neither does
	// anything its sessions run. It is killed by its pid file.
	logFile := filepath.Join(s.dir, "sshd.log")
	argv := []string{sshd, "-f", cfg, "-E", logFile}
	if s.ns != nil {
		argv = append([]string{"ip", "netns", "exec", s.ns.Name}, argv...)
	}
	run(t, argv[0], argv[1:]...)
	t.Cleanup(func() {
		if b, err := os.ReadFile(filepath.Join(s.dir, "sshd.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				syscall.Kill(pid, syscall.SIGTERM)
			}
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(s.Addr, strconv.Itoa(s.Port)), time.Second)
		if err == nil {
			c.Close()
			return s
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logFile)
			t.Fatalf("sshd did not listen on %s:%d: %v\n%s", s.Addr, s.Port, err, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Namespace is another "host" for a test: a network namespace of its own,
// joined to this one by a veth pair. Processes in it share this host's
// pids and files; only the network differs.
type Namespace struct {
	Name  string // for ip netns
	Here  string // this side's address on the link: 10.199.N.1
	There string // the namespace's own address: 10.199.N.2
	veth  string // this side's end of the veth pair
}

// NewNamespace makes a namespace for the rest of the test. It skips t (or
// fails it under ARBOR_REQUIRE_SSHD=1) unless this runs as root with ip.
// When the test ends, whatever still runs in the namespace is killed and
// the namespace and its link are removed.
func NewNamespace(t testing.TB) *Namespace {
	t.Helper()
	switch {
	case os.Geteuid() != 0:
		unavailable(t, "not root")
	case lookPath("ip") == "":
		unavailable(t, "ip is missing (Debian's iproute2)")
	}
	k := int(serial.Add(1))
	n := (os.Getpid() + k) % 250 // the subnet
	// Interface names are global here and at most 15 bytes.
	peer := fmt.Sprintf("arb%d.%dp", os.Getpid()%100000, k%1000)
	ns := &Namespace{Name: fmt.Sprintf("arbor-ssh-%d-%d", os.Getpid(), k),
		Here: fmt.Sprintf("10.199.%d.1", n), There: fmt.Sprintf("10.199.%d.2", n),
		veth: fmt.Sprintf("arb%d.%dh", os.Getpid()%100000, k%1000)}
	run(t, "ip", "netns", "add", ns.Name)
	t.Cleanup(func() {
		// What still runs in the namespace (a session over the cut link,
		// what a failed test left) goes with it.
		if out, err := exec.Command("ip", "netns", "pids", ns.Name).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				if pid, err := strconv.Atoi(f); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		exec.Command("ip", "link", "del", ns.veth).Run()
		exec.Command("ip", "netns", "del", ns.Name).Run()
	})
	run(t, "ip", "link", "add", ns.veth, "type", "veth", "peer", "name", peer)
	run(t, "ip", "link", "set", peer, "netns", ns.Name)
	run(t, "ip", "addr", "add", ns.Here+"/24", "dev", ns.veth)
	run(t, "ip", "link", "set", ns.veth, "up")
	run(t, "ip", "netns", "exec", ns.Name, "ip", "addr", "add", ns.There+"/24", "dev", peer)
	run(t, "ip", "netns", "exec", ns.Name, "ip", "link", "set", peer, "up")
	run(t, "ip", "netns", "exec", ns.Name, "ip", "link", "set", "lo", "up")
	return ns
}

// Command is the command that runs name with args inside the namespace,
// through ip netns exec, which execs it: the process the command starts is
// the program itself, with its pid.
func (ns *Namespace) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Cut takes the link between the two hosts down: packets stop, and neither
// side sees an end of stream.
func (ns *Namespace) Cut(t testing.TB) {
	t.Helper()
	run(t, "ip", "link", "set", ns.veth, "down")
}

// Launcher is the ssh command that reaches the server as root, for
// spawn.Options.Launcher; env, if given, are VAR=value words set on the far
// side before the program runs.
func (s *Server) Launcher(env ...string) []string {
	argv := []string{"ssh", "-T", "-p", strconv.Itoa(s.Port), "-i", filepath.Join(s.dir, "client_key"),
		"-o", "StrictHostKeyChecking=accept-new", "-o", "UserKnownHostsFile=" + filepath.Join(s.dir, "known_hosts"),
		"-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10",
		"root@" + s.Addr}
	if len(env) > 0 {
		argv = append(append(argv, "env"), env...)
	}
	return argv
}

// Cut takes the link between the two hosts down: packets stop, and neither
// side sees an end of stream. It works on a server in a namespace only.
func (s *Server) Cut(t testing.TB) {
	t.Helper()
	if s.ns == nil {
		t.Fatal("sshtest: Cut needs a server started with Netns")
	}
	s.ns.Cut(t)
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode()&0o111 != 0
}

func lookPath(name string) string {
	p, _ := exec.LookPath(name)
	return p
}
