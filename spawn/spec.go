package spawn

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/arbor-go/arbor/protocol"
)

// specEnv carries a child's spec from its parent. It travels in the
// environment rather than in a message after the handshake because the
// child's Hello must already carry the identity the parent assigned.
const specEnv = "ARBOR_SPEC"

// Transport is how a parent and its child actor are connected.
type Transport int

const (
	// Pipes, the default, is a pair of pipes inherited by the child as fds
	// 3 (parent to child) and 4 (child to parent): no path on disk, nothing
	// another process could connect to. Between processes on a 2-core
	// machine a call's round trip over pipes measured 80-100 us against
	// 107-121 us over a socketpair (BenchmarkTransportRoundTrip), so pipes
	// are the default private channel.
	Pipes Transport = iota
	// Socketpair is a unix socketpair inherited as fd 3.
	Socketpair
	// Stdio uses the child's stdin and stdout, for children that cannot
	// take extra file descriptors or are reached through a pipe (ssh).
	// What the child's code prints to stdout goes to its log instead.
	Stdio
	// UnixSocket is a socket file in a private directory (0700, socket
	// 0600) that the child connects to, presenting a per-spawn secret. The
	// file is removed once the child has connected, or the start failed.
	UnixSocket
)

var transportNames = [...]string{Pipes: "pipes", Socketpair: "socketpair", Stdio: "stdio", UnixSocket: "unix"}

func (t Transport) String() string {
	if t >= 0 && int(t) < len(transportNames) {
		return transportNames[t]
	}
	return fmt.Sprintf("transport(%d)", int(t))
}

// spec is what a parent tells its child about itself.
type spec struct {
	Actor     protocol.ActorID `json:"actor"`
	Parent    protocol.ActorID `json:"parent"`
	LogLevel  string           `json:"log_level"`
	Transport string           `json:"transport"`
	Addr      string           `json:"addr,omitempty"`
	Secret    string           `json:"secret,omitempty"`
}

// childSpec returns the spec this process was started with, if it was
// started as an actor.
func childSpec() (*spec, bool, error) {
	raw, ok := os.LookupEnv(specEnv)
	if !ok {
		return nil, false, nil
	}
	var s spec
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return nil, true, fmt.Errorf("spawn: %s is not a valid actor spec: %w", specEnv, err)
	}
	return &s, true, nil
}
