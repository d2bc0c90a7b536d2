package shellword

import (
	"os/exec"
	"strings"
	"testing"
)

// TestQuoteRoundTrips: sh, given the quoted words, passes each back as it
// was.
func TestQuoteRoundTrips(t *testing.T) {
	words := []string{"plain", "a b", "it's", `"dq"`, "$HOME", "`id`", "=ls", "~", "*", "", "tab\there", "new\nline", "a=b", "back\\slash"}
	line := strings.Join(Line(words), " ")
	got, err := exec.Command("sh", "-c", `for w in `+line+`; do printf '[%s]' "$w"; done`).Output()
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for _, w := range words {
		want.WriteString("[" + w + "]")
	}
	if string(got) != want.String() {
		t.Errorf("sh read back\n%q\nwant\n%q", got, want.String())
	}
	if Quote("=ls") == "=ls" || Quote("plain") != "plain" {
		t.Errorf("Quote(=ls) = %s, Quote(plain) = %s", Quote("=ls"), Quote("plain"))
	}
}
