package main

import (
	"fmt"
	"testing"
)

// The log book keeps the last keptLines lines of each child, and a
// follower that does not read loses lines (counted) instead of holding up
// the children's output.
func TestLogBook(t *testing.T) {
	b, err := newLogBook("")
	if err != nil {
		t.Fatal(err)
	}
	_, f := b.history("web", true)
	for i := range keptLines + 500 {
		b.add("web.1", fmt.Sprint("line ", i))
		b.add("worker", "other")
	}
	past, _ := b.history("web", false)
	if len(past) != keptLines || past[0].Text != "line 500" || past[len(past)-1].Text != fmt.Sprint("line ", keptLines+499) {
		t.Fatalf("kept %d lines, from %q to %q", len(past), past[0].Text, past[len(past)-1].Text)
	}
	if len(f.lines) != keptLines+500 || b.takeDropped(f) != 0 {
		t.Fatalf("the follower got %d lines", len(f.lines))
	}
	for range followBuffer {
		b.add("web.2", "more")
	}
	if n := b.takeDropped(f); n != keptLines+500 {
		t.Fatalf("dropped %d, want the %d that did not fit", n, keptLines+500)
	}
	b.unfollow(f)
}
