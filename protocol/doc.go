// Package protocol holds what an arbor user meets of the wire protocol,
// version 1.2: the identity of an actor (ActorID), boxed remote errors
// (RemoteError, the codes and their sentinels, and the registry that lets
// an error type or sentinel cross between processes), function schemas
// (Schema, SchemaOf) and the version rule of the handshake.
//
// The messages themselves, their msgpack encoding and the frames that carry
// them are internal (internal/envelope): package ipc speaks them, and
// nothing else needs to. PROTOCOL.md in this directory is the
// language-neutral specification, and testdata/protocol holds golden
// vectors of every message kind.
package protocol
