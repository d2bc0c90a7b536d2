package ipc

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

// A consumer can stop waiting for the next item without ending the stream
// (issue 10, item 9); Done and Err tell how the stream ended.
func TestRecvContext(t *testing.T) {
	release := make(chan struct{})
	twice := NewStream("test.twice", func(ctx context.Context, _ struct{}, out *Yielder[int]) error {
		if err := out.Send(1); err != nil {
			return err
		}
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := out.Send(2); err != nil {
			return err
		}
		return errors.New("done with a failure")
	})
	parent, _ := pair(t, transports[0], MustNewTable(twice), nil, nil)
	s, err := twice.Open(context.Background(), parent, struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.RecvContext(context.Background()); v != 1 || err != nil {
		t.Fatalf("first item: %d, %v", v, err)
	}
	wait, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := s.RecvContext(wait); err != context.DeadlineExceeded {
		t.Fatalf("a wait that ended: got %v, want context.DeadlineExceeded", err)
	}
	select {
	case <-s.Done():
		t.Fatal("the stream ended with the wait")
	default:
	}
	if s.Err() != nil {
		t.Fatalf("Err while running: %v", s.Err())
	}
	close(release)
	if v, err := s.Recv(); v != 2 || err != nil {
		t.Fatalf("the stream did not go on after the wait: %d, %v", v, err)
	}
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after the stream failed")
	}
	if _, err := s.Recv(); err == nil || err == io.EOF || err.Error() != s.Err().Error() {
		t.Fatalf("Recv %v, Err %v: want the stream's failure from both", err, s.Err())
	}
}
