package protocol

import (
	"encoding"
	"reflect"
	"strings"
	"time"
)

// Schema describes one function an actor serves: its name, kind and the
// types of what crosses the wire. The runtime function "arbor.schema"
// returns the schemas of everything an endpoint serves.
type Schema struct {
	Name string   `msgpack:"name" json:"name"`
	Kind FuncKind `msgpack:"kind" json:"kind"`
	// Args is the argument type; Result the return type (unary and context
	// functions); Started the first value of a context; Yield what the
	// function sends to the caller (streams and contexts); Send what the
	// caller sends to the function (contexts).
	Args    *TypeSchema `msgpack:"args" json:"args"`
	Result  *TypeSchema `msgpack:"result,omitempty" json:"result,omitempty"`
	Started *TypeSchema `msgpack:"started,omitempty" json:"started,omitempty"`
	Yield   *TypeSchema `msgpack:"yield,omitempty" json:"yield,omitempty"`
	Send    *TypeSchema `msgpack:"send,omitempty" json:"send,omitempty"`
}

// TypeSchema is a JSON-Schema-like description of a Go type as msgpack
// carries it. Type is one of "null", "boolean", "integer", "number",
// "string", "binary", "timestamp", "array", "object" or "any".
type TypeSchema struct {
	Type   string `msgpack:"type" json:"type"`
	GoType string `msgpack:"go_type,omitempty" json:"go_type,omitempty"`
	// Nullable is set for pointers, slices and maps, which may travel as nil.
	Nullable bool `msgpack:"nullable,omitempty" json:"nullable,omitempty"`
	// Properties lists the fields of a struct, in declaration order.
	Properties []Property `msgpack:"properties,omitempty" json:"properties,omitempty"`
	// Items is the element type of an array, or the value type of a map.
	Items *TypeSchema `msgpack:"items,omitempty" json:"items,omitempty"`
	// Keys is the key type of a map.
	Keys *TypeSchema `msgpack:"keys,omitempty" json:"keys,omitempty"`
	// Ref names a type already being described higher up (recursive types).
	Ref string `msgpack:"ref,omitempty" json:"ref,omitempty"`
}

// Property is one field of an object.
type Property struct {
	Name   string      `msgpack:"name" json:"name"`
	Schema *TypeSchema `msgpack:"schema" json:"schema"`
}

var (
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
	durationType  = reflect.TypeFor[time.Duration]()
	timeType      = reflect.TypeFor[time.Time]()
)

// SchemaOf describes t as msgpack/v5 encodes it by default: structs as maps
// keyed by their `msgpack` tag or field name. A nil t is "null".
func SchemaOf(t reflect.Type) *TypeSchema {
	return schemaOf(t, map[reflect.Type]bool{})
}

func schemaOf(t reflect.Type, inProgress map[reflect.Type]bool) *TypeSchema {
	if t == nil {
		return &TypeSchema{Type: "null"}
	}
	s := &TypeSchema{GoType: t.String()}
	if t.Name() != "" {
		// Only a named type can refer to itself (type List []List).
		if inProgress[t] {
			return &TypeSchema{Type: kindName(t), Ref: t.String()}
		}
		inProgress[t] = true
		defer delete(inProgress, t)
	}
	if t == timeType {
		s.Type = "timestamp"
		return s
	}
	if t == durationType {
		s.Type = "integer"
		return s
	}
	switch t.Kind() {
	case reflect.Bool:
		s.Type = "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		s.Type = "integer"
	case reflect.Float32, reflect.Float64:
		s.Type = "number"
	case reflect.String:
		s.Type = "string"
	case reflect.Pointer:
		inner := schemaOf(t.Elem(), inProgress)
		inner.Nullable = true
		return inner
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			s.Type = "binary"
			break
		}
		s.Type = "array"
		s.Nullable = t.Kind() == reflect.Slice
		s.Items = schemaOf(t.Elem(), inProgress)
	case reflect.Map:
		s.Type = "object"
		s.Nullable = true
		s.Keys = schemaOf(t.Key(), inProgress)
		s.Items = schemaOf(t.Elem(), inProgress)
	case reflect.Struct:
		s.Type = "object"
		s.Properties = structProperties(t, inProgress)
	default: // interfaces, funcs, channels
		s.Type = "any"
	}
	if s.Type != "string" && t.Kind() != reflect.Struct && t.Implements(textMarshaler) {
		s.Type = "string"
	}
	return s
}

// kindName is the schema type of a reference to a type being described.
func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	}
	return "any"
}

func structProperties(t reflect.Type, inProgress map[reflect.Type]bool) []Property {
	var props []Property
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("msgpack"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct || strings.Contains(opts, "inline") {
			props = append(props, structProperties(f.Type, inProgress)...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		props = append(props, Property{Name: name, Schema: schemaOf(f.Type, inProgress)})
	}
	return props
}
