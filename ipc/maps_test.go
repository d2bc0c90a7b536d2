package ipc

import (
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// The map decoders of maps.go give what msgpack's own give at the top level
// (its Decode takes *map[string]any itself), and inside a struct they give
// back what was encoded, nil maps and nested ones included.
func TestMapDecodersMatchMsgpack(t *testing.T) {
	type holder struct {
		M map[string]any
		U map[any]any
	}
	values := []any{
		map[string]any{"a": []any{int8(1), "x"}, "b": nil, "c": map[string]any{"d": true}},
		map[string]any(nil),
		holder{M: map[string]any{"k": "v"}, U: map[any]any{"n": int8(2)}},
		holder{},
	}
	for _, v := range values {
		raw, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		got := reflect.New(reflect.TypeOf(v))
		want := reflect.New(reflect.TypeOf(v))
		want.Elem().Set(reflect.ValueOf(v))
		if _, top := v.(map[string]any); top {
			want = reflect.New(reflect.TypeOf(v))
			if err := msgpack.Unmarshal(raw, want.Interface()); err != nil {
				t.Fatal(err)
			}
		}
		switch p := got.Interface().(type) {
		case *map[string]any:
			err = decodePayload("f", "result", raw, p)
		case *holder:
			err = decodePayload("f", "result", raw, p)
		}
		if err != nil || !reflect.DeepEqual(got.Elem().Interface(), want.Elem().Interface()) {
			t.Errorf("%x: got %#v, %v; msgpack gives %#v", raw, got.Elem().Interface(), err, want.Elem().Interface())
		}
	}
}
