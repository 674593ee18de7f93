// Package defaults fills in the options a caller left unset.
package defaults

import "cmp"

// Set sets *v to def when *v is not above its type's zero value: an
// empty string, or a number or duration that is zero or negative.
func Set[T cmp.Ordered](v *T, def T) {
	var zero T
	if *v <= zero {
		*v = def
	}
}
