package spawn

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

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

// spec is what a parent tells its child about itself: as JSON in
// ARBOR_SPEC, or as a msgpack map in its hello (PROTOCOL.md §12.1, §12.7).
type spec struct {
	Actor     protocol.ActorID `json:"actor" msgpack:"actor"`
	Parent    protocol.ActorID `json:"parent" msgpack:"parent"`
	LogLevel  string           `json:"log_level" msgpack:"log_level"`
	Transport string           `json:"transport" msgpack:"transport"`
	Addr      string           `json:"addr,omitempty" msgpack:"addr,omitempty"`
	Secret    string           `json:"secret,omitempty" msgpack:"secret,omitempty"`
	// HeartbeatMS is the heartbeat period in milliseconds; 0: none.
	HeartbeatMS int64 `json:"heartbeat_ms,omitempty" msgpack:"heartbeat_ms,omitempty"`
	// PeerSecret is the tree's secret, which peers present (§13.1).
	PeerSecret string `json:"peer_secret,omitempty" msgpack:"peer_secret,omitempty"`

	// fromHello: ARBOR_SPEC was "handshake", or the process dials in, and
	// the rest comes in the parent's hello.
	fromHello bool
	// credential: a dial-in's ARBOR_CREDENTIAL.
	credential string
}

// specHandshake, as ARBOR_SPEC, says the spec comes in the parent's hello:
// the child was started through a launcher, which carries no environment
// and no JSON through a remote shell's quoting (PROTOCOL.md §12.7).
const specHandshake = "handshake"

func (s *spec) heartbeat() time.Duration { return time.Duration(s.HeartbeatMS) * time.Millisecond }

// childSpec returns the spec this process was started with, if it was
// started as an actor.
func childSpec() (*spec, bool, error) {
	raw, ok := os.LookupEnv(specEnv)
	if !ok {
		if sp, ok := connectSpec(); ok { // started by a scheduler, to dial in
			return sp, true, nil
		}
		return nil, false, nil
	}
	if raw == specHandshake {
		return &spec{Transport: Stdio.String(), fromHello: true}, true, nil
	}
	var s spec
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return nil, true, fmt.Errorf("spawn: %s is not a valid actor spec: %w", specEnv, err)
	}
	return &s, true, nil
}
