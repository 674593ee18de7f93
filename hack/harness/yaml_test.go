package harness_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/falco-am-bridge/falco-am-bridge/hack/harness"
)

// TestYAMLDifferences: the scalars that YAML 1.1 and 1.2 read apart are
// found, in every document, with their path; quoted, they agree.
func TestYAMLDifferences(t *testing.T) {
	python := harness.Binary(t, "PYTHON_BIN")
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"agree", "a: 1\nb: [x, 'yes', \"=\", 1.5, null, true]\nc: {d: 2024-01-02}\n", nil},
		{"equals sign", "matchers:\n  - matchType: =\n", []string{"PyYAML cannot read it: yaml.constructor.ConstructorError: could not determine a constructor for the tag 'tag:yaml.org,2002:value' in \"<stdin>\", line 2, column 16"}},
		{"yes", "a:\n  b: yes\n", []string{`.a.b: PyYAML (YAML 1.1) reads bool true, yaml.v3 reads the string "yes"`}},
		{"off in a list", "a: [x, off]\n", []string{`.a[1]: PyYAML (YAML 1.1) reads bool false, yaml.v3 reads the string "off"`}},
		{"exponent", "a: 1e3\n", []string{`.a: PyYAML (YAML 1.1) reads the string "1e3", yaml.v3 reads float 1000`}},
		{"key on", "on: push\n", []string{
			".(bool true): PyYAML (YAML 1.1) reads the key as bool true, yaml.v3 does not",
			".on: yaml.v3 reads this key, PyYAML (YAML 1.1) does not",
		}},
		{"second document", "a: 1\n---\nb: no\n", []string{`document 2: .b: PyYAML (YAML 1.1) reads bool false, yaml.v3 reads the string "no"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := harness.YAMLDifferences(context.Background(), python, []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("differences:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
