package harness

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// MappingOverlay says how WriteMappingOverlay changes a mapping file. Zero
// fields leave it as it is.
type MappingOverlay struct {
	TTL string // replaces the line "ttl: 10m"
	// Overrides replaces the line "overrides: []": a YAML "overrides:" key
	// and its list.
	Overrides string
	// GeneratorURL replaces the line `generator_url: ""`: a template.
	GeneratorURL string
}

// WriteMappingOverlay writes the mapping file src, changed as o says, to
// dst. It fails when a line to change is not there, so a change to the
// shipped mapping cannot leave a test quietly testing something else.
func WriteMappingOverlay(src, dst string, o MappingOverlay) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	for _, r := range []struct{ line, with string }{
		{"\nttl: 10m\n", o.TTL},
		{"\noverrides: []\n", o.Overrides},
		{"\ngenerator_url: \"\"\n", o.GeneratorURL},
	} {
		if r.with == "" {
			continue
		}
		if !bytes.Contains(data, []byte(r.line)) {
			return fmt.Errorf("%s has no line %q to change", src, bytes.TrimSpace([]byte(r.line)))
		}
		with := r.with
		switch r.line {
		case "\nttl: 10m\n":
			with = "ttl: " + with
		case "\ngenerator_url: \"\"\n":
			with = "generator_url: " + strconv.Quote(with)
		}
		data = bytes.Replace(data, []byte(r.line), []byte("\n"+with+"\n"), 1)
	}
	return os.WriteFile(dst, data, 0o600)
}
