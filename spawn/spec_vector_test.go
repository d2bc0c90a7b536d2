package spawn

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/arbor-go/arbor/internal/vectortest"
	"github.com/arbor-go/arbor/protocol"
)

var updateVectors = flag.Bool("update", false, "rewrite spec.json and unix-secret.hex in testdata/protocol")

// vectorSpec is the ARBOR_SPEC of the vector spec.json (PROTOCOL.md §12.1).
var vectorSpec = spec{
	Actor:     protocol.ActorID{Name: "root.pool.worker-1", UUID: "c3d2e1f0-a9b8-4c7d-8e6f-5a4b3c2d1e0f"},
	Parent:    protocol.ActorID{Name: "root.pool", UUID: "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"},
	LogLevel:  "debug",
	Transport: UnixSocket.String(),
	Addr:      "/tmp/arbor-2286351/root.pool.worker-1.sock",
	Secret:    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
}

// TestSpecVectors checks the vectors of how a child starts: spec.json is
// what a parent puts in ARBOR_SPEC, encoded as Start encodes it and read
// back as a child reads it, and unix-secret.hex the bytes a child writes on
// connecting to the unix transport, before its hello (PROTOCOL.md §12.2).
func TestSpecVectors(t *testing.T) {
	specPath := filepath.Join(vectortest.Dir(), "spec.json")
	secretPath := filepath.Join(vectortest.Dir(), "unix-secret.hex")
	encoded, err := json.Marshal(vectorSpec) // as Start puts it in the environment
	if err != nil {
		t.Fatal(err)
	}
	secretLine := vectorSpec.Secret + "\n" // as the child writes it
	if *updateVectors {
		pretty, _ := json.MarshalIndent(vectorSpec, "", "  ")
		hexText := "# unix-secret: the 65 bytes a child writes on connecting to the unix transport: the spec's secret, 64 hex digits, then \"\\n\"\n" +
			hex.EncodeToString([]byte(secretLine)[:32]) + "\n" + hex.EncodeToString([]byte(secretLine)[32:64]) + "\n" + hex.EncodeToString([]byte(secretLine)[64:]) + "\n"
		if err := os.WriteFile(specPath, append(pretty, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(secretPath, []byte(hexText), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	doc, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(specEnv, string(doc))
	got, ok, err := childSpec()
	if !ok || err != nil || !reflect.DeepEqual(*got, vectorSpec) {
		t.Fatalf("a child reads spec.json as %+v (%v, %v), want %+v", got, ok, err, vectorSpec)
	}
	// The vector holds the same members as what a parent sends.
	var fromVector, fromParent map[string]any
	if err := json.Unmarshal(doc, &fromVector); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(encoded, &fromParent); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromVector, fromParent) {
		t.Fatalf("spec.json holds %v, a parent sends %s", fromVector, encoded)
	}

	data, err := os.ReadFile(secretPath)
	if err != nil {
		t.Fatal(err)
	}
	var digits strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "#") {
			digits.WriteString(strings.TrimSpace(line))
		}
	}
	secret, err := hex.DecodeString(digits.String())
	if err != nil {
		t.Fatal(err)
	}
	if string(secret) != secretLine || len(secret) != 65 {
		t.Fatalf("unix-secret.hex holds %q, want the spec's secret and a newline", secret)
	}
}
