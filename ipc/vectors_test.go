package ipc

import (
	"bytes"
	"context"
	"testing"

	"github.com/arbor-go/arbor/internal/vectortest"
	"github.com/arbor-go/arbor/protocol"
)

// TestSchemaVector checks that what this runtime answers to arbor.schema,
// for the two functions the vector describes, is the value of the golden
// vector return-schema (PROTOCOL.md §9, §11), byte for byte.
func TestSchemaVector(t *testing.T) {
	add := NewFunc("math.add", func(_ context.Context, a [2]int) (int, error) { return a[0] + a[1], nil })
	walk := NewStream("files.walk", func(_ context.Context, dir string, out *Yielder[string]) error { return nil })
	var got protocol.Raw
	if err := encodePayload(MustNewTable(add, walk).Schemas(), func(r protocol.Raw) error {
		got = append(got, r...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := vectortest.Payload(t, "return-schema", "v"); !bytes.Equal(got, want) {
		t.Fatalf("arbor.schema answers\n%x\nthe vector holds\n%x", got, want)
	}
}

// TestCancelVectors checks arbor.cancel's arguments as this runtime sends
// them against start-cancel and start-cancel-by, and that both decode.
func TestCancelVectors(t *testing.T) {
	root := protocol.ActorID{Name: "root", UUID: "0f8e6a52-3c1d-4b7a-9e21-5d4c3b2a1908"}
	for _, tt := range []struct {
		vector string
		args   cancelArgs
	}{
		{"start-cancel", cancelArgs{CID: 3}},
		{"start-cancel-by", cancelArgs{CID: 3, By: root}},
	} {
		var got protocol.Raw
		if err := encodePayload(tt.args, func(r protocol.Raw) error {
			got = append(got, r...)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		want := vectortest.Payload(t, tt.vector, "args")
		if !bytes.Equal(got, want) {
			t.Errorf("%s: the runtime sends %x, the vector holds %x", tt.vector, got, want)
		}
		var back cancelArgs
		if err := decodePayload("arbor.cancel", "argument", want, &back); err != nil || back != tt.args {
			t.Errorf("%s decodes to %+v, %v; want %+v", tt.vector, back, err, tt.args)
		}
	}
}
