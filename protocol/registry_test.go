package protocol

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"testing"
)

type quotaError struct {
	User  string
	Bytes int64
}

func (e *quotaError) Error() string {
	return fmt.Sprintf("%s is over quota by %d bytes", e.User, e.Bytes)
}

type codeError struct{ Code int }

func (e codeError) Error() string { return fmt.Sprint("code ", e.Code) }

var errBusy = errors.New("busy")

func init() {
	RegisterError[*quotaError]("test.Quota")
	RegisterError[codeError]("test.Code")
	RegisterSentinel("test.Busy", errBusy)
}

// crossed boxes err as the runtime does and returns what the other side
// holds once it has decoded the message: the same fields, with data in a
// buffer of its own. (internal/envelope's tests, and the golden vector
// error-registered, check that name and data survive the codec.)
func crossed(t *testing.T, err error) *RemoteError {
	t.Helper()
	e := &RemoteError{Type: fmt.Sprintf("%T", err), Message: err.Error(), Source: ActorID{"worker", "u1"}}
	e.Name, e.Data = RegisteredName(err)
	return &RemoteError{Type: e.Type, Message: e.Message, Source: e.Source, Name: e.Name, Data: append(Raw(nil), e.Data...)}
}

func TestRegisteredErrorsCross(t *testing.T) {
	t.Run("type", func(t *testing.T) {
		got := crossed(t, fmt.Errorf("writing: %w", &quotaError{User: "ann", Bytes: 42}))
		var q *quotaError
		if !errors.As(got, &q) || q.User != "ann" || q.Bytes != 42 {
			t.Fatalf("errors.As got %+v from %+v", q, got)
		}
		if got.Name != "test.Quota" {
			t.Fatalf("name %q", got.Name)
		}
	})
	t.Run("value type", func(t *testing.T) {
		var c codeError
		if got := crossed(t, codeError{Code: 7}); !errors.As(got, &c) || c.Code != 7 {
			t.Fatalf("errors.As got %+v", c)
		}
	})
	t.Run("sentinels", func(t *testing.T) {
		_, openErr := os.Open("/nonexistent/arbor")
		for _, tc := range []struct {
			err, want error
		}{
			{fmt.Errorf("reading the header: %w", io.EOF), io.EOF},
			{openErr, fs.ErrNotExist},
			{fmt.Errorf("try later: %w", errBusy), errBusy},
		} {
			if got := crossed(t, tc.err); !errors.Is(got, tc.want) {
				t.Errorf("%v: errors.Is(%v) is false after crossing (name %q)", tc.err, tc.want, got.Name)
			}
		}
	})
	t.Run("unregistered", func(t *testing.T) {
		got := crossed(t, errors.New("plain"))
		if got.Name != "" || len(got.Unwrap()) != 0 || errors.Is(got, io.EOF) {
			t.Fatalf("an unregistered error unwraps to %v", got.Unwrap())
		}
	})
	t.Run("unknown name or bad data", func(t *testing.T) {
		for _, e := range []*RemoteError{
			{Name: "elsewhere.Only", Data: Raw{0x80}},
			{Name: "test.Quota", Data: Raw{0xa3, 'x', 'y', 'z'}}, // a string, not the struct
		} {
			if u := e.Unwrap(); len(u) != 0 {
				t.Errorf("%+v unwraps to %v, want nothing", e, u)
			}
		}
	})
}

func TestRegisterTwicePanics(t *testing.T) {
	for name, f := range map[string]func(){
		"name":  func() { RegisterSentinel("test.Quota", errors.New("x")) },
		"type":  func() { RegisterError[*quotaError]("test.Quota2") },
		"empty": func() { RegisterSentinel("", errors.New("x")) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: registering twice did not panic", name)
				}
			}()
			f()
		}()
	}
}
