package falco

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzDecode feeds arbitrary bodies to the splitter and decoder: no input
// may panic, and what comes out must hold together. Its corpus is in
// testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		minimal,
		"[" + minimal + "," + minimal + "]",
		minimal + "\n" + minimal + "\n",
		`{"rule":"R","priority":"info","time":1678882374175850394,"container":{"labels":{"a.b":"c"}},"proc":{"pid":1}}`,
		`{"rule":"R","priority":"Debug","time":"2023-05-25T13:44:05Z","output_fields":{"a":null,"b":"<NA>","c":[1,"x",null],"d":18446744073709551615}}`,
		`{"Rule":"R","priority":"Debug","time":{"seconds":"1","nanos":2}}`,
		"[{\"rule\":\n{", `{"rule":"\u00e9\ud83d\ude00","priority":"DEBUG","time":"2023-05-25T13:44:05Z","tags":[]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		raws := Split(body)
		line := 1
		for i, r := range raws {
			if r.Index != i {
				t.Fatalf("event %d has Index %d", i, r.Index)
			}
			if r.Line < line {
				t.Fatalf("event %d starts on line %d, before line %d", i, r.Line, line)
			}
			line = r.Line
			ev, err := r.Decode()
			if err != nil {
				if err.Index != i || err.Expected == "" || err.Error() == "" {
					t.Fatalf("bad error for event %d: %#v", i, err)
				}
				continue
			}
			if ev.Rule == "" || ev.Priority < PriorityEmergency || ev.Priority > PriorityDebug {
				t.Fatalf("valid event without rule or priority: %+v", ev)
			}
			if js := ev.Fields.JSON(); !json.Valid([]byte(js)) || !utf8.ValidString(js) {
				t.Fatalf("Fields.JSON() is not valid JSON in UTF-8: %q", js)
			}
			for k, v := range ev.Fields {
				if !utf8.ValidString(k) || !utf8.ValidString(v.String()) {
					t.Fatalf("field %q = %q is not UTF-8", k, v.String())
				}
			}
		}
	})
}
