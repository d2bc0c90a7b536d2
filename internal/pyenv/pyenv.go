// Package pyenv finds a Python 3 interpreter that can run arbor's Python
// package (python/arbor), for the tests that run Python actors.
package pyenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Find returns the first of $ARBOR_PYTHON, /usr/bin/python3 (where Debian's
// python3-msgpack installs) and python3 on $PATH that imports msgpack.
func Find() (string, error) {
	var tried []string
	for _, c := range []string{os.Getenv("ARBOR_PYTHON"), "/usr/bin/python3", "python3"} {
		if c == "" {
			continue
		}
		path, err := exec.LookPath(c)
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s: %v", c, err))
			continue
		}
		if out, err := exec.Command(path, "-c", "import msgpack").CombinedOutput(); err != nil {
			tried = append(tried, fmt.Sprintf("%s: %v: %s", path, err, out))
			continue
		}
		return path, nil
	}
	return "", fmt.Errorf("no Python 3 with msgpack (install Debian's python3-msgpack, or set ARBOR_PYTHON): %v", tried)
}

// Require returns the interpreter Find finds. Without one it skips the
// test, or fails it when $ARBOR_REQUIRE_PYTHON is set (as CI sets it).
func Require(t testing.TB) string {
	t.Helper()
	py, err := Find()
	if err != nil {
		if os.Getenv("ARBOR_REQUIRE_PYTHON") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return py
}

// Dir returns the python/ directory of this repository.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "python")
}
