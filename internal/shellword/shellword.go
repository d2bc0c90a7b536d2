// Package shellword quotes words for a POSIX shell: what ssh needs, since it
// hands its command to the remote user's shell as one line.
package shellword

import "strings"

// safe are the bytes a word may hold and stay unquoted in any POSIX shell
// (and zsh, where only a leading '=' is special among them).
const safe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:@%+,"

// Quote returns w as one word for a shell: as it is when it has only safe
// bytes and does not start with '=' (zsh expands =cmd), else in single
// quotes.
func Quote(w string) string {
	if w != "" && w[0] != '=' && strings.Trim(w, safe) == "" {
		return w
	}
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}

// Line quotes each word and joins them with spaces.
func Line(words []string) []string {
	out := make([]string, len(words))
	for i, w := range words {
		out[i] = Quote(w)
	}
	return out
}
