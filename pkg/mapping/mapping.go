// Package mapping turns Falco events into Alertmanager alerts, as a
// label-mapping file says. A file is compiled once (templates parsed and
// tried, names and regexps checked) and the compiled Mapping is then pure and
// safe for concurrent use: Event in, Alert out, no I/O.
package mapping

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/prometheus/common/model"

	shipped "github.com/falco-am-bridge/falco-am-bridge/mapping"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/alertmanager"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/falco"
)

// Defaults for what a mapping file leaves out.
const (
	DefaultTTL                = 10 * time.Minute
	DefaultMaxLabelBytes      = 1024
	DefaultMaxAnnotationBytes = 4096
	// minLimitBytes leaves room for the truncation mark and some text.
	minLimitBytes = 64
)

// truncMark ends every value that was cut to fit a limit.
const truncMark = "…[truncated]"

// Mapping is a compiled label-mapping file.
type Mapping struct {
	name         string
	minPriority  falco.Priority
	ttl          time.Duration
	generatorURL *template.Template
	generatorAt  int // line of generator_url
	maxLabel     int
	maxAnno      int
	escape       bool
	severities   [8]string
	static       []staticLabel
	labels       []compiled
	annotations  []compiled
	overrides    []override
	source       []byte // the file as parsed, for the playground
}

type staticLabel struct {
	name  model.LabelName
	value string
}

type compiled struct {
	name model.LabelName
	tmpl *template.Template
	line int // in the mapping file, for errors found when trying it out
}

type override struct {
	rules       map[string]bool
	ruleRegex   *regexp.Regexp
	tags        []string
	sources     []string
	minPriority *falco.Priority
	labels      []compiled
	annotations []compiled
	ttl         time.Duration
	drop        bool
}

// Default returns the compiled mapping shipped in the binary.
func Default() (*Mapping, error) {
	return Parse("default.yaml", shipped.Default)
}

// Parse compiles a mapping file. name is used in error messages, which name
// the file, the line and the key of every problem found.
func Parse(name string, data []byte) (*Mapping, error) {
	f, err := parseFile(name, data)
	if err != nil {
		return nil, err
	}
	c := compiler{name: name}
	m := c.compile(f)
	if err := errors.Join(c.errs...); err != nil {
		return nil, err
	}
	m.source = data
	return m, nil
}

// Name returns the name the mapping was parsed under.
func (m *Mapping) Name() string { return m.name }

type compiler struct {
	name string
	errs []error
}

func (c *compiler) errorf(line int, key, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if line > 0 {
		c.errs = append(c.errs, fmt.Errorf("%s:%d: %s: %s", c.name, line, key, msg))
		return
	}
	c.errs = append(c.errs, fmt.Errorf("%s: %s: %s", c.name, key, msg))
}

func (c *compiler) compile(f *file) *Mapping {
	m := &Mapping{
		name:        c.name,
		minPriority: falco.PriorityDebug,
		ttl:         DefaultTTL,
		maxLabel:    DefaultMaxLabelBytes,
		maxAnno:     DefaultMaxAnnotationBytes,
		escape:      true,
		severities:  defaultSeverities(),
	}
	if f.MinPriority != nil {
		m.minPriority = f.MinPriority.p
	}
	if f.TTL != nil {
		if f.TTL.d <= 0 {
			c.errorf(f.TTL.line, "ttl", "must be greater than 0, got %s", f.TTL.d)
		}
		m.ttl = f.TTL.d
	}
	if l := f.Limits.MaxLabelBytes; l != nil {
		if *l < minLimitBytes {
			c.errorf(0, "limits.max_label_bytes", "must be at least %d, got %d", minLimitBytes, *l)
		}
		m.maxLabel = *l
	}
	if l := f.Limits.MaxAnnotationBytes; l != nil {
		if *l < minLimitBytes {
			c.errorf(0, "limits.max_annotation_bytes", "must be at least %d, got %d", minLimitBytes, *l)
		}
		m.maxAnno = *l
	}
	if e := f.Limits.EscapeTemplateDelimiters; e != nil {
		m.escape = *e
	}
	for k, v := range f.Severities {
		p, err := falco.ParsePriority(k)
		if err != nil {
			c.errorf(0, "severities."+k, "%v", err)
			continue
		}
		m.severities[p] = v
	}
	for _, s := range f.StaticLabels {
		if c.checkName(s.line, "static_labels", s.name) {
			m.static = append(m.static, staticLabel{name: model.LabelName(s.name), value: s.src})
		}
	}
	if f.GeneratorURL.src != "" {
		m.generatorURL = c.template(f.GeneratorURL.line, "generator_url", f.GeneratorURL.src)
		m.generatorAt = f.GeneratorURL.line
	}
	m.labels = c.templates("labels", f.Labels)
	m.annotations = c.templates("annotations", f.Annotations)
	for i, o := range f.Overrides {
		m.overrides = append(m.overrides, c.override(i, o))
	}
	if len(c.errs) == 0 {
		c.tryOut(m)
	}
	return m
}

func defaultSeverities() [8]string {
	return [8]string{"critical", "critical", "critical", "error", "warning", "info", "info", "info"}
}

func (c *compiler) override(i int, o overrideSpec) override {
	key := fmt.Sprintf("overrides[%d]", i)
	ov := override{tags: o.Match.Tags, sources: o.Match.Source, drop: o.Drop}
	if mp := o.Match.MinPriority; mp != nil {
		ov.minPriority = &mp.p
	}
	if len(o.Match.Rule) > 0 {
		ov.rules = make(map[string]bool, len(o.Match.Rule))
		for _, r := range o.Match.Rule {
			ov.rules[r] = true
		}
	}
	if rx := o.Match.RuleRegex; rx.src != "" {
		re, err := regexp.Compile("^(?:" + rx.src + ")$")
		if err != nil {
			c.errorf(rx.line, key+".match.rule_regex", "%v", err)
		}
		ov.ruleRegex = re
	}
	if o.TTL != nil {
		if o.TTL.d <= 0 {
			c.errorf(o.TTL.line, key+".ttl", "must be greater than 0, got %s", o.TTL.d)
		}
		ov.ttl = o.TTL.d
	}
	ov.labels = c.templates(key+".labels", o.Labels)
	ov.annotations = c.templates(key+".annotations", o.Annotations)
	return ov
}

func (c *compiler) checkName(line int, section, name string) bool {
	key := section + "." + name
	switch {
	case !model.LegacyValidation.IsValidLabelName(name):
		c.errorf(line, key, "%q is not a valid name: use letters, digits and underscores, not starting with a digit", name)
		return false
	case strings.HasPrefix(name, "__"):
		c.errorf(line, key, "names starting with __ are reserved")
		return false
	}
	return true
}

func (c *compiler) templates(section string, nv namedValues) []compiled {
	out := make([]compiled, 0, len(nv))
	for _, v := range nv {
		if !c.checkName(v.line, section, v.name) {
			continue
		}
		t := c.template(v.line, section+"."+v.name, v.src)
		if t != nil {
			out = append(out, compiled{name: model.LabelName(v.name), tmpl: t, line: v.line})
		}
	}
	return out
}

func (c *compiler) template(line int, key, src string) *template.Template {
	t, err := template.New(key).Option("missingkey=zero").Funcs(funcs).Parse(src)
	if err != nil {
		c.errorf(line, key, "%v", err)
		return nil
	}
	return t
}

// tryOut runs every template once against a sample event, so that a
// template that can never work (a misspelt field, a wrong argument) fails
// at load rather than on every event.
func (c *compiler) tryOut(m *Mapping) {
	ev := &falco.Event{
		Rule: "Sample rule", Priority: falco.PriorityWarning, Time: time.Unix(0, 0).UTC(),
		Output: "sample", Source: "syscall", Hostname: "host", Tags: []string{"sample"},
		Fields: falco.Fields{},
	}
	d := newData(ev, time.Unix(0, 0).UTC(), m)
	d.Labels = map[string]string{}
	var buf bytes.Buffer
	try := func(line int, t *template.Template) {
		buf.Reset()
		// A function failing on the sample's values ("error calling
		// index: index out of range") may well work on real events;
		// anything else (a misspelt field, a wrong argument) never will.
		if err := t.Execute(&buf, d); err != nil && !strings.Contains(err.Error(), "error calling ") {
			c.errorf(line, t.Name(), "%v", err)
		}
	}
	if m.generatorURL != nil {
		try(m.generatorAt, m.generatorURL)
	}
	sets := [][]compiled{m.labels, m.annotations}
	for _, o := range m.overrides {
		sets = append(sets, o.labels, o.annotations)
	}
	for _, set := range sets {
		for _, t := range set {
			try(t.line, t.tmpl)
		}
	}
}

// Result is what mapping one event gives.
type Result struct {
	// Alert is nil when the event was dropped.
	Alert *alertmanager.Alert
	// Dropped says why no alert was made: DropPriority or DropOverride.
	Dropped string
	// Errors holds template errors; the alert is still made without the
	// values that failed.
	Errors []error
}

// Reasons an event makes no alert.
const (
	DropPriority = "min_priority"
	DropOverride = "override"
)

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Map turns one event into an alert. received is when the bridge got the
// event; it bounds startsAt (clock skew) and starts the time to live.
func (m *Mapping) Map(ev *falco.Event, received time.Time) Result {
	if !ev.Priority.AtLeast(m.minPriority) {
		return Result{Dropped: DropPriority}
	}
	ttl := m.ttl
	var matched []*override
	for i := range m.overrides {
		o := &m.overrides[i]
		if !o.matches(ev) {
			continue
		}
		if o.drop {
			return Result{Dropped: DropOverride}
		}
		if o.ttl > 0 {
			ttl = o.ttl
		}
		matched = append(matched, o)
	}

	var res Result
	buf := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(buf)
	d := newData(ev, received, m)

	labels := make(map[string]string, len(m.labels)+len(m.static)+2)
	render := func(dst map[string]string, set []compiled, max int) {
		for _, c := range set {
			buf.Reset()
			if err := c.tmpl.Execute(buf, d); err != nil {
				res.Errors = append(res.Errors, fmt.Errorf("%s: %w", c.tmpl.Name(), err))
				delete(dst, string(c.name))
				continue
			}
			dst[string(c.name)] = m.clean(buf.String(), max)
		}
	}
	render(labels, m.labels, m.maxLabel)
	for _, s := range m.static {
		labels[string(s.name)] = m.clean(s.value, m.maxLabel)
	}
	for _, o := range matched {
		render(labels, o.labels, m.maxLabel)
	}
	d.Labels = labels

	annotations := make(map[string]string, len(m.annotations)+2)
	render(annotations, m.annotations, m.maxAnno)
	for _, o := range matched {
		render(annotations, o.annotations, m.maxAnno)
	}

	a := &alertmanager.Alert{
		Labels:      toLabelSet(labels),
		Annotations: toLabelSet(annotations),
		StartsAt:    ev.Time,
		EndsAt:      received.Add(ttl),
	}
	// An event time ahead of our clock (skew) must not start the alert in
	// the future: Alertmanager would reject or never notify it.
	if a.StartsAt.IsZero() || a.StartsAt.After(received) {
		a.StartsAt = received
	}
	if m.generatorURL != nil {
		buf.Reset()
		if err := m.generatorURL.Execute(buf, d); err != nil {
			res.Errors = append(res.Errors, fmt.Errorf("generator_url: %w", err))
		} else if u := strings.TrimSpace(buf.String()); u != "" {
			// One unparsable URL would make Alertmanager reject the
			// whole batch (422), so leave it out instead.
			if _, err := url.Parse(u); err != nil {
				res.Errors = append(res.Errors, fmt.Errorf("generator_url: %q is not a valid URL", u))
			} else {
				a.GeneratorURL = u
			}
		}
	}
	res.Alert = a
	return res
}

func toLabelSet(m map[string]string) model.LabelSet {
	ls := make(model.LabelSet, len(m))
	for k, v := range m {
		if v != "" {
			ls[model.LabelName(k)] = model.LabelValue(v)
		}
	}
	return ls
}

func (o *override) matches(ev *falco.Event) bool {
	if o.minPriority != nil && !ev.Priority.AtLeast(*o.minPriority) {
		return false
	}
	if o.rules != nil && !o.rules[ev.Rule] {
		return false
	}
	if o.ruleRegex != nil && !o.ruleRegex.MatchString(ev.Rule) {
		return false
	}
	if len(o.sources) > 0 && !slices.Contains(o.sources, ev.Source) {
		return false
	}
	for _, t := range o.tags {
		if !slices.Contains(ev.Tags, t) {
			return false
		}
	}
	return true
}

// clean makes a rendered value safe to send: trimmed, template delimiters
// neutralised, and cut to max bytes.
func (m *Mapping) clean(s string, max int) string {
	s = strings.TrimSpace(s)
	if m.escape {
		s = EscapeTemplateDelimiters(s)
	}
	return Truncate(s, max)
}

// EscapeTemplateDelimiters puts a space between every two adjacent braces of
// the same kind, so the result holds neither "{{" nor "}}" and no template
// engine downstream can see an action in it.
func EscapeTemplateDelimiters(s string) string {
	if !strings.Contains(s, "{{") && !strings.Contains(s, "}}") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i > 0 && (c == '{' || c == '}') && s[i-1] == c {
			b.WriteByte(' ')
		}
		b.WriteByte(c)
	}
	return b.String()
}

// Truncate cuts s to at most max bytes, never inside a UTF-8 character, and
// marks the cut.
func Truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max - len(truncMark)
	if cut < 0 {
		cut = 0
	}
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + truncMark
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
