// Package envelope is arbor's wire envelope (PROTOCOL.md §2–8): the
// messages two actors exchange, their msgpack encoding, written and read by
// hand, and the frames that carry them. Package ipc is its one user; the
// types users meet (ActorID, RemoteError, Version, Raw) are package
// protocol's.
//
// Decoding never panics and never sizes an allocation from a length it has
// not checked against the bytes present: any input yields a message or a
// typed error (*MalformedError, *UnknownKindError, *FrameTooLargeError,
// *TruncatedFrameError). The package does no I/O beyond an io.Reader it is
// handed and starts no goroutines.
package envelope
