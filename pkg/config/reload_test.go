package config

import (
	"slices"
	"strings"
	"testing"
)

// TestRestartOnly: of two files that differ in web.ui, sensors.silent_after
// and mapping.file, the first two need a restart; a reload applies the
// mapping.
func TestRestartOnly(t *testing.T) {
	was, err := load(t, "--config.file="+writeFile(t, "a.yaml", "web:\n  ui: true\nsensors:\n  silent_after: 10m\nmapping:\n  file: a.yaml\n"))
	if err != nil {
		t.Fatal(err)
	}
	now, err := load(t, "--config.file="+writeFile(t, "b.yaml", "web:\n  ui: false\nsensors:\n  silent_after: 20m\nmapping:\n  file: b.yaml\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := RestartOnly(was, now), []string{"web.ui", "sensors.silent_after"}; !slices.Equal(got, want) {
		t.Errorf("RestartOnly = %q, want %q", got, want)
	}
	if got := RestartOnly(was, was); len(got) != 0 {
		t.Errorf("RestartOnly of one configuration = %q, want none", got)
	}
}

// TestRestartOnlyKeysAreSettings: every field tagged reload:"restart"
// derives the key of a setting, so the warning names what the user wrote.
func TestRestartOnlyKeysAreSettings(t *testing.T) {
	keys := map[string]bool{}
	for _, s := range Settings() {
		keys[s.Key] = true
		// A section (source.nats) stands for every setting in it.
		for k := s.Key; strings.Contains(k, "."); {
			k = k[:strings.LastIndex(k, ".")]
			keys[k] = true
		}
	}
	fields := restartFields()
	if len(fields) == 0 {
		t.Fatal(`no field is tagged reload:"restart"`)
	}
	for _, f := range fields {
		if !keys[f.key] {
			t.Errorf("%s (tagged reload:\"restart\") is no setting's key nor section", f.key)
		}
	}
}
