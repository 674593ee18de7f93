// Package text holds what the bridge does to strings in more than one
// place.
package text

import "unicode/utf8"

// Cut returns s cut to at most max bytes, never inside a UTF-8 character.
func Cut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	for max > 0 && !utf8.RuneStart(s[max]) {
		max--
	}
	return s[:max]
}
