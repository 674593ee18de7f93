package mapping

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

// TestControlCharactersStripped: NUL, escape, bell, DEL and C1 characters
// an event carries, escaped in its JSON, reach no label value; annotations
// lose them too but keep their newlines and tabs.
func TestControlCharactersStripped(t *testing.T) {
	m, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	ev := event(t, `{"rule":"Shell\u0000 in \u001b[31mcontainer\u007f","priority":"Critical","time":"2026-01-02T10:00:00Z",`+
		`"output":"line one\u0000\n\tline two\u0007\u0085","hostname":"node\u0000-1\n",`+
		`"output_fields":{"k8s.ns.name":"prod\r\n\u009b","k8s.pod.name":"\u0000\u0001","proc.cmdline":"sh\u0000 -c\tid"}}`)
	a := m.Map(ev, time.Date(2026, 1, 2, 10, 0, 1, 0, time.UTC)).Alert
	want := map[string]string{
		"falco_rule": "Shell in [31mcontainer",
		"hostname":   "node-1",
		"namespace":  "prod",
	}
	for k, v := range want {
		if got := string(a.Labels[model.LabelName(k)]); got != v {
			t.Errorf("label %s = %q, want %q", k, got, v)
		}
	}
	if _, ok := a.Labels["pod_name"]; ok {
		t.Errorf("pod_name of control characters only is %q, want it left out", a.Labels["pod_name"])
	}
	for k, v := range a.Labels {
		if i := indexControl(string(v), false); i >= 0 {
			t.Errorf("label %s = %q holds a control character", k, v)
		}
	}
	for k, v := range a.Annotations {
		if i := indexControl(string(v), true); i >= 0 {
			t.Errorf("annotation %s = %q holds a control character", k, v)
		}
	}
	if got := string(a.Annotations["description"]); got != "line one\n\tline two" {
		t.Errorf("description = %q, want its lines and tab kept", got)
	}
	if got := string(a.Annotations["command"]); got != "sh -c\tid" {
		t.Errorf("command = %q", got)
	}
}

func TestStripControl(t *testing.T) {
	for in, want := range map[string]string{
		"":                  "",
		"plain":             "plain",
		"ünïcödé ✓":         "ünïcödé ✓",
		"a\x00b":            "ab",
		"\x1b[1;31mred":     "[1;31mred",
		"tab\tnew\nline\r":  "tabnewline",
		"del\x7f":           "del",
		"c1\u0080\u009fend": "c1end",
		"nbsp\u00a0kept":    "nbsp\u00a0kept",
	} {
		if got := StripControl(in); got != want {
			t.Errorf("StripControl(%q) = %q, want %q", in, got, want)
		}
	}
	if got := stripControl("a\n\tb\x00", true); got != "a\n\tb" {
		t.Errorf("keeping lines: %q", got)
	}
	if s := strings.Repeat("x", 100); stripControl(s, false) != s {
		t.Error("a clean value changed")
	}
}

// FuzzIndexControl checks indexControl, which reads eight bytes at a time,
// against the byte-at-a-time loop.
func FuzzIndexControl(f *testing.F) {
	for _, s := range []string{"", "plain ascii text, long enough", "a\x00b", "tab\tnew\nline", "\x7f", "c1\u0085", "\xc2", "1234567\xc2\x85", "ünïcödé ✓ nbsp\u00a0kept", "12345678\x1f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, lines := range []bool{false, true} {
			if got, want := indexControl(s, lines), byteIndexControl(s, 0, len(s), lines); got != want {
				t.Fatalf("indexControl(%q, %v) = %d, the byte loop says %d", s, lines, got, want)
			}
		}
	})
}

// TestIndexControlEveryByte puts every byte value, and every pair that
// starts with 0xC2, at every place of a clean value of 24 bytes.
func TestIndexControlEveryByte(t *testing.T) {
	clean := []byte(strings.Repeat("abcdefgh", 3))
	for pos := range clean {
		for c := range 256 {
			for _, next := range []int{-1, 0x80, 0x9f, 0xa0} {
				b := append([]byte(nil), clean...)
				b[pos] = byte(c)
				if next >= 0 && pos+1 < len(b) {
					b[pos+1] = byte(next)
				}
				for _, lines := range []bool{false, true} {
					s := string(b)
					if got, want := indexControl(s, lines), byteIndexControl(s, 0, len(s), lines); got != want {
						t.Fatalf("indexControl(%q, %v) = %d, the byte loop says %d", s, lines, got, want)
					}
				}
			}
		}
	}
}
