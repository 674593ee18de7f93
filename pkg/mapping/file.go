package mapping

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/falco"
)

// file is the mapping file as written.
type file struct {
	MinPriority  *prioritySrc      `yaml:"min_priority"`
	TTL          *durationSrc      `yaml:"ttl"`
	GeneratorURL tmplSrc           `yaml:"generator_url"`
	Limits       limitsSpec        `yaml:"limits"`
	Severities   map[string]string `yaml:"severities"`
	StaticLabels namedValues       `yaml:"static_labels"`
	Labels       namedValues       `yaml:"labels"`
	Annotations  namedValues       `yaml:"annotations"`
	Overrides    []overrideSpec    `yaml:"overrides"`
}

type limitsSpec struct {
	MaxLabelBytes            *int  `yaml:"max_label_bytes"`
	MaxAnnotationBytes       *int  `yaml:"max_annotation_bytes"`
	EscapeTemplateDelimiters *bool `yaml:"escape_template_delimiters"`
}

// The types with an UnmarshalYAML of their own are leaves (scalars, or
// mappings of scalars): yaml.v3 does not carry KnownFields into a custom
// unmarshaler, so structs must be decoded by the library itself.
type overrideSpec struct {
	Match       matchSpec    `yaml:"match"`
	Labels      namedValues  `yaml:"labels"`
	Annotations namedValues  `yaml:"annotations"`
	TTL         *durationSrc `yaml:"ttl"`
	Drop        bool         `yaml:"drop"`
}

type matchSpec struct {
	Rule        stringList   `yaml:"rule"`
	RuleRegex   tmplSrc      `yaml:"rule_regex"`
	Tags        stringList   `yaml:"tags"`
	Source      stringList   `yaml:"source"`
	MinPriority *prioritySrc `yaml:"min_priority"`
}

// durationSrc is a duration (Prometheus syntax: 30s, 10m, 1h, 1d) with the
// line it is on.
type durationSrc struct {
	d    time.Duration
	line int
}

func (d *durationSrc) UnmarshalYAML(n *yaml.Node) error {
	v, err := scalar(n, model.ParseDuration, "a duration (like 30s, 10m, 1h)")
	d.d, d.line = time.Duration(v), n.Line
	return err
}

// prioritySrc is a Falco priority name with the line it is on.
type prioritySrc struct {
	p    falco.Priority
	line int
}

func (p *prioritySrc) UnmarshalYAML(n *yaml.Node) error {
	v, err := scalar(n, falco.ParsePriority, "a Falco priority (emergency, alert, critical, error, warning, notice, informational, debug)")
	p.p, p.line = v, n.Line
	return err
}

// scalar parses the scalar n is with parse, or says on which line it is
// not what.
func scalar[T any](n *yaml.Node, parse func(string) (T, error), what string) (T, error) {
	v, err := parse(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		var zero T
		return zero, fmt.Errorf("line %d: %q is not %s", n.Line, n.Value, what)
	}
	return v, nil
}

// tmplSrc is a template as written, with the line it is on.
type tmplSrc struct {
	src  string
	line int
}

func (t *tmplSrc) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: expected a string", n.Line)
	}
	t.src, t.line = n.Value, n.Line
	return nil
}

// stringList accepts one string or a list of strings.
type stringList []string

func (s *stringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*s = []string{n.Value}
		return nil
	}
	var l []string
	if err := n.Decode(&l); err != nil {
		return err
	}
	*s = l
	return nil
}

// namedValues is a mapping of label or annotation names to templates, in
// file order.
type namedValues []namedValue

type namedValue struct {
	name string
	tmplSrc
}

func (nv *namedValues) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: expected a mapping of names to values", n.Line)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			return fmt.Errorf("line %d: %q is set twice", k.Line, k.Value)
		}
		seen[k.Value] = true
		var t tmplSrc
		if err := t.UnmarshalYAML(v); err != nil {
			return fmt.Errorf("line %d: %s: expected a string", v.Line, k.Value)
		}
		t.line = k.Line
		*nv = append(*nv, namedValue{name: k.Value, tmplSrc: t})
	}
	return nil
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

// parseFile decodes a mapping file strictly: unknown keys are errors.
func parseFile(name string, data []byte) (*file, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f file
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return &f, nil
		}
		return nil, yamlError(name, err)
	}
	return &f, nil
}

// yamlError rewrites the YAML decoder's messages to name the file and line
// first and to speak of keys rather than Go types.
func yamlError(name string, err error) error {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	errs := make([]error, 0, len(msgs))
	for _, m := range msgs {
		line := 0
		if sm := yamlLine.FindStringSubmatch(m); sm != nil {
			line, _ = strconv.Atoi(sm[1])
			m = m[len(sm[0]):]
		}
		if f, ok := strings.CutPrefix(m, "field "); ok {
			if key, _, found := strings.Cut(f, " not found in type"); found {
				m = fmt.Sprintf("unknown key %q", key)
			}
		}
		m = strings.ReplaceAll(m, "yaml: ", "")
		if line > 0 {
			errs = append(errs, fmt.Errorf("%s:%d: %s", name, line, m))
		} else {
			errs = append(errs, fmt.Errorf("%s: %s", name, m))
		}
	}
	return errors.Join(errs...)
}
