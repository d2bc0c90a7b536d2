// Package vectortest reads the golden vectors of testdata/protocol
// (PROTOCOL.md §11) for the tests of the packages that must match them.
package vectortest

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Dir is the directory of the vectors.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "protocol")
}

// Fields decodes the "fields" of the vector named vector into v.
func Fields(t testing.TB, vector string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(Dir(), vector+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Fields json.RawMessage `json:"fields"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s.json: %v", vector, err)
	}
	if err := json.Unmarshal(doc.Fields, v); err != nil {
		t.Fatalf("%s.json: its fields: %v", vector, err)
	}
}

// Payload is the payload field (args, v) of the vector named vector: the
// msgpack bytes its hex spells.
func Payload(t testing.TB, vector, field string) []byte {
	t.Helper()
	var fields map[string]any
	Fields(t, vector, &fields)
	s, _ := fields[field].(string)
	b, err := hex.DecodeString(s)
	if err != nil || len(b) == 0 {
		t.Fatalf("%s.json: field %q is not a hex payload: %v", vector, field, fields[field])
	}
	return b
}
