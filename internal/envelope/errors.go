package envelope

import (
	"fmt"
	"strings"
)

// MalformedError says why a message body could not be decoded.
type MalformedError struct {
	Kind   Kind   // the message kind, when it was known
	CID    uint64 // the call id, when it was decoded before the problem
	Field  string // the field being decoded, when known
	Offset int    // byte offset in the message body, when known
	Reason string
}

func (e *MalformedError) Error() string {
	var b strings.Builder
	b.WriteString("malformed ")
	if e.Kind != 0 {
		b.WriteString(e.Kind.String() + " ")
	}
	b.WriteString("message")
	if e.Field != "" {
		fmt.Fprintf(&b, ", field %q", e.Field)
	}
	if e.Offset > 0 {
		fmt.Fprintf(&b, " at byte %d", e.Offset)
	}
	return b.String() + ": " + e.Reason
}

// UnknownKindError is a message whose kind this version does not know.
type UnknownKindError struct {
	Kind string
}

func (e *UnknownKindError) Error() string {
	return fmt.Sprintf("unknown message kind %q", e.Kind)
}

// FrameTooLargeError is a frame over the maximum size. Outgoing, it fails
// only the message being sent; incoming, it ends the channel, and nothing of
// the announced size is allocated.
type FrameTooLargeError struct {
	Size     uint64
	Max      int
	Incoming bool
}

func (e *FrameTooLargeError) Error() string {
	dir := "outgoing"
	if e.Incoming {
		dir = "incoming"
	}
	return fmt.Sprintf("%s frame of %d bytes exceeds the maximum frame size of %d bytes", dir, e.Size, e.Max)
}

// TruncatedFrameError is a stream that ended inside a frame.
type TruncatedFrameError struct {
	Want, Got int
}

func (e *TruncatedFrameError) Error() string {
	return fmt.Sprintf("stream ended inside a frame: got %d of %d bytes", e.Got, e.Want)
}
