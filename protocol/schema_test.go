package protocol

import (
	"reflect"
	"testing"
)

type recList []recList
type recMap map[string]recMap
type recNode struct {
	Next     *recNode
	Children []recNode
}

func TestSchemaOfRecursiveTypes(t *testing.T) {
	for _, typ := range []reflect.Type{reflect.TypeFor[recList](), reflect.TypeFor[recMap](), reflect.TypeFor[recNode]()} {
		s := SchemaOf(typ) // must not recurse without end
		if s.Type == "" {
			t.Fatalf("%v: empty schema", typ)
		}
	}
	s := SchemaOf(reflect.TypeFor[recList]())
	if s.Type != "array" || s.Items.Ref != "protocol.recList" {
		t.Fatalf("recList: %+v / %+v", s, s.Items)
	}
}
