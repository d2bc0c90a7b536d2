package protocol

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// VersionError is a peer that speaks an incompatible major version.
type VersionError struct {
	Local, Remote Version
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("protocol version mismatch: this side speaks %s, the peer speaks %s (major versions differ)",
		e.Local, e.Remote)
}

// CheckVersion returns a *VersionError when remote cannot talk to Current.
func CheckVersion(remote Version) error {
	if remote.Major != Current().Major {
		return &VersionError{Local: Current(), Remote: remote}
	}
	return nil
}

// ErrorCode classifies a RemoteError. The empty code is an error returned by
// application code; the others are set by the runtime.
type ErrorCode string

const (
	CodeApplication     ErrorCode = ""
	CodeCancelled       ErrorCode = "cancelled"
	CodeDeadline        ErrorCode = "deadline"
	CodePanic           ErrorCode = "panic"
	CodeUnknownFunction ErrorCode = "unknown_function"
	CodeWrongKind       ErrorCode = "wrong_kind"
	CodeBadArgument     ErrorCode = "bad_argument"
	CodeProtocol        ErrorCode = "protocol"
	CodeExited          ErrorCode = "exited"
	CodeOverloaded      ErrorCode = "overloaded"
)

// RuntimeType is the pinned type of an error the runtime makes itself
// (PROTOCOL.md §4): "arbor." and the code, such as "arbor.cancelled", the
// same in every language, where an application error carries its own
// language's type name.
func RuntimeType(code ErrorCode) string { return "arbor." + string(code) }

// Sentinels that a RemoteError with the matching code satisfies under
// errors.Is, in addition to context.Canceled and context.DeadlineExceeded.
var (
	ErrPanic           = errors.New("remote function panicked")
	ErrUnknownFunction = errors.New("unknown function")
	ErrWrongKind       = errors.New("function called as the wrong kind")
	ErrBadArgument     = errors.New("argument does not match the declared type")
	ErrProtocol        = errors.New("protocol violation")
	ErrExited          = errors.New("actor exited")
	ErrOverloaded      = errors.New("actor serves its maximum of calls")
)

var codeSentinels = map[ErrorCode]error{
	CodeCancelled:       context.Canceled,
	CodeDeadline:        context.DeadlineExceeded,
	CodePanic:           ErrPanic,
	CodeUnknownFunction: ErrUnknownFunction,
	CodeWrongKind:       ErrWrongKind,
	CodeBadArgument:     ErrBadArgument,
	CodeProtocol:        ErrProtocol,
	CodeExited:          ErrExited,
	CodeOverloaded:      ErrOverloaded,
}

// RemoteError is an error that happened in another actor, boxed with what
// is known about it rather than flattened to a string. Use errors.As to get
// it; errors.Is matches the sentinel of its Code (context.Canceled for
// CodeCancelled, and so on).
type RemoteError struct {
	Code ErrorCode
	// Type is the Go type of the original error ("*fs.PathError"), or
	// "panic" for a recovered panic.
	Type    string
	Message string
	// Stack is the stack trace where the error was boxed; for a panic, the
	// panicking goroutine's stack.
	Stack string
	// Source is the actor where the error happened.
	Source ActorID
	// Relay lists the actors the error passed through on its way here,
	// nearest the source first.
	Relay []ActorID
	// Canceller is the actor that asked for the cancellation, for
	// CodeCancelled.
	Canceller ActorID
	// Name is the name the original error's type or sentinel was
	// registered under (RegisterError, RegisterSentinel), and Data the
	// registered type's fields, msgpack-encoded. Unwrap rebuilds the
	// error from them when this side knows the name.
	Name string
	Data Raw
	// Children are the errors of a group (a nursery's failures, an
	// errors.Join) that failed as one: each keeps its own source and
	// relay path.
	Children []*RemoteError
}

// Unwrap returns the original error rebuilt from Name and Data, if this
// side registered the name, followed by the children, so that errors.Is
// and errors.As reach them.
func (e *RemoteError) Unwrap() []error {
	var errs []error
	if r := e.restore(); r != nil {
		errs = append(errs, r)
	}
	for _, c := range e.Children {
		errs = append(errs, c)
	}
	return errs
}

func (e *RemoteError) Error() string {
	var b strings.Builder
	b.WriteString("actor ")
	b.WriteString(e.Source.String())
	for _, a := range e.Relay {
		b.WriteString(" via ")
		b.WriteString(a.String())
	}
	b.WriteString(": ")
	if e.Code == CodeCancelled && !e.Canceller.IsZero() {
		fmt.Fprintf(&b, "cancelled by %s: ", e.Canceller)
	}
	if e.Type != "" && e.Code == CodeApplication || e.Code == CodePanic {
		b.WriteString(e.Type + ": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// Is reports whether target is the sentinel for e's code.
func (e *RemoteError) Is(target error) bool {
	s, ok := codeSentinels[e.Code]
	return ok && s == target
}

// RelayedThrough returns a copy of e with via appended to its relay path,
// and to its children's: what an actor passes up when an error from below
// crosses it.
func (e *RemoteError) RelayedThrough(via ActorID) *RemoteError {
	c := *e
	c.Relay = append(append(make([]ActorID, 0, len(e.Relay)+1), e.Relay...), via)
	if len(e.Children) > 0 {
		c.Children = make([]*RemoteError, len(e.Children))
		for i, child := range e.Children {
			c.Children[i] = child.RelayedThrough(via)
		}
	}
	return &c
}
