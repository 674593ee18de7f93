package falco

import (
	"fmt"
	"strings"
)

// Priority is a Falco rule priority. Lower values are more severe, as in
// syslog and in Falco itself.
type Priority int8

// The eight Falco priorities, most severe first.
const (
	PriorityEmergency Priority = iota
	PriorityAlert
	PriorityCritical
	PriorityError
	PriorityWarning
	PriorityNotice
	PriorityInformational
	PriorityDebug
)

var priorityNames = [...]string{"Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug"}

// ParsePriority parses a priority name the way Falco does: case-insensitive,
// with "info" accepted for Informational.
func ParsePriority(s string) (Priority, error) {
	for i, name := range priorityNames {
		if strings.EqualFold(s, name) {
			return Priority(i), nil
		}
	}
	if strings.EqualFold(s, "info") {
		return PriorityInformational, nil
	}
	return 0, fmt.Errorf("%q is not a Falco priority (%s)", s, strings.Join(priorityNames[:], ", "))
}

// String returns the capitalised name Falco puts on the wire.
func (p Priority) String() string {
	if p < 0 || int(p) >= len(priorityNames) {
		return fmt.Sprintf("Priority(%d)", int8(p))
	}
	return priorityNames[p]
}

// AtLeast reports whether p is as severe as min or more.
func (p Priority) AtLeast(min Priority) bool { return p <= min }
