// Package protocol defines arbor's wire protocol, version 1: the messages
// two actors exchange, their msgpack encoding, the frames that carry them,
// the handshake's version rule, boxed remote errors and function schemas.
//
// The package does no I/O beyond an io.Reader it is handed and starts no
// goroutines; package ipc builds channels and calls on top of it.
// PROTOCOL.md in this directory is the language-neutral specification, and
// testdata/protocol holds golden vectors of every message kind.
//
// Decoding never panics and never sizes an allocation from a length it has
// not checked against the bytes present: any input yields a message or a
// typed error (*MalformedError, *UnknownKindError, *FrameTooLargeError,
// *TruncatedFrameError).
package protocol
