package mapping

import "testing"

func TestMitre(t *testing.T) {
	for _, tc := range []struct {
		tags                []string
		tactics, techniques string
	}{
		{nil, "", ""},
		{[]string{"container", "shell"}, "", ""},
		{[]string{"T1059.004", "container", "mitre_execution", "shell"}, "execution", "T1059.004"},
		{[]string{"PCI_DSS_11.5.1", "TA0003", "mitre_persistence"}, "persistence", ""},
		{[]string{"T1562-impair-defenses", "TA0005-defense-evasion", "WAF"}, "defense_evasion", "T1562"},
		{[]string{"mitre_privilege_escalation", "mitre_defense_evasion", "T1611", "T1055.008"}, "defense_evasion,privilege_escalation", "T1055.008,T1611"},
		{[]string{"TA9999", "mitre_", "mitre_Bad-Name", "T12", "T1234x", "T1059.00", "Tabcd"}, "", ""},
		{[]string{"T1059", "T1059", "mitre_execution", "TA0002"}, "execution", "T1059"},
	} {
		if got := MitreTactics(tc.tags); got != tc.tactics {
			t.Errorf("MitreTactics(%q) = %q, want %q", tc.tags, got, tc.tactics)
		}
		if got := MitreTechniques(tc.tags); got != tc.techniques {
			t.Errorf("MitreTechniques(%q) = %q, want %q", tc.tags, got, tc.techniques)
		}
	}
}
