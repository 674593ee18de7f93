package mapping

import (
	"slices"
	"strings"
)

// MITRE ATT&CK tactics by ID, named as Falco's rule tags name them
// (mitre_privilege_escalation).
var mitreTacticIDs = map[string]string{
	"TA0001": "initial_access", "TA0002": "execution", "TA0003": "persistence",
	"TA0004": "privilege_escalation", "TA0005": "defense_evasion", "TA0006": "credential_access",
	"TA0007": "discovery", "TA0008": "lateral_movement", "TA0009": "collection",
	"TA0010": "exfiltration", "TA0011": "command_and_control", "TA0040": "impact",
	"TA0042": "resource_development", "TA0043": "reconnaissance",
}

// MitreTactics returns the MITRE ATT&CK tactics that Falco rule tags name,
// sorted and comma-joined: "mitre_execution" and "TA0002" (alone or as
// "TA0002-execution") give "execution". Tactics are few, so the result
// fits a label.
func MitreTactics(tags []string) string {
	var out []string
	for _, tag := range tags {
		name := ""
		if rest, ok := strings.CutPrefix(tag, "mitre_"); ok {
			name = rest
		} else if len(tag) >= 6 && strings.HasPrefix(tag, "TA") {
			name = mitreTacticIDs[tag[:6]]
		}
		if name != "" && isTacticName(name) && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

func isTacticName(s string) bool {
	for _, c := range s {
		if (c < 'a' || c > 'z') && c != '_' {
			return false
		}
	}
	return true
}

// MitreTechniques returns the MITRE ATT&CK technique IDs in Falco rule tags,
// sorted and comma-joined: "T1059.004" and "T1562-impair-defenses" give
// "T1059.004,T1562".
func MitreTechniques(tags []string) string {
	var out []string
	for _, tag := range tags {
		id := techniqueID(tag)
		if id != "" && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

// techniqueID returns the T1234 or T1234.567 that tag starts with, if the
// rest of the tag is empty or starts with "-".
func techniqueID(tag string) string {
	digits := func(s string) bool {
		for _, c := range s {
			if c < '0' || c > '9' {
				return false
			}
		}
		return true
	}
	if len(tag) < 5 || tag[0] != 'T' || !digits(tag[1:5]) {
		return ""
	}
	n := 5
	if len(tag) >= 9 && tag[5] == '.' && digits(tag[6:9]) {
		n = 9
	}
	if len(tag) > n && tag[n] != '-' {
		return ""
	}
	return tag[:n]
}
