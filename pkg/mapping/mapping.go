// Package mapping turns Falco events into Alertmanager alerts, as a
// label-mapping file says. A file is compiled once (templates parsed and
// tried, names and regexps checked) and the compiled Mapping is then pure and
// safe for concurrent use: Event in, Alert out, no I/O. Templates of the
// common shapes are compiled further, into direct evaluators that give
// text/template's output without its reflection (see fast.go).
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
	"github.com/falco-am-bridge/falco-am-bridge/pkg/alert"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/falco"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/text"
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
	generatorURL *compiled
	maxLabel     int
	maxAnno      int
	escape       bool
	// slowAfterLabels says a template rendered after the labels runs on
	// text/template, which needs Data.Labels.
	slowAfterLabels bool
	severities      [8]string
	static          []staticLabel
	labels          []compiled
	annotations     []compiled
	overrides       []override
	source          []byte // the file as parsed, for the playground
}

type staticLabel struct {
	name  model.LabelName
	value string
}

type compiled struct {
	name model.LabelName
	tmpl *template.Template
	fast *fastTemplate // nil when the template needs text/template
	line int           // in the mapping file, for errors found when trying it out
}

// execute renders the template, by its fast path when it has one.
func (c *compiled) execute(sc *scratch, d *Data) (string, error) {
	if c.fast != nil {
		if s, ok := c.fast.run(&sc.out, d); ok {
			return s, nil
		}
	}
	sc.buf.Reset()
	if err := c.tmpl.Execute(&sc.buf, d); err != nil {
		return "", err
	}
	return sc.buf.String(), nil
}

// scratch is what rendering one event needs and does not keep.
type scratch struct {
	data Data
	out  output
	buf  bytes.Buffer
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

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
	return compileMapping(name, data, true)
}

// compileMapping is Parse; fast false keeps every template on text/template, which
// tests compare the fast paths with.
func compileMapping(name string, data []byte, fast bool) (*Mapping, error) {
	f, err := parseFile(name, data)
	if err != nil {
		return nil, err
	}
	c := compiler{name: name, fast: fast}
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
	fast bool
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
		m.generatorURL = c.compiled(f.GeneratorURL.line, "generator_url", "", f.GeneratorURL.src)
	}
	m.labels = c.templates("labels", f.Labels)
	m.annotations = c.templates("annotations", f.Annotations)
	for i, o := range f.Overrides {
		m.overrides = append(m.overrides, c.override(i, o))
	}
	after := [][]compiled{m.annotations}
	for _, o := range m.overrides {
		after = append(after, o.annotations)
	}
	for _, set := range after {
		for _, t := range set {
			m.slowAfterLabels = m.slowAfterLabels || t.fast == nil
		}
	}
	m.slowAfterLabels = m.slowAfterLabels || m.generatorURL != nil && m.generatorURL.fast == nil
	if len(c.errs) == 0 {
		c.tryOut(m)
	}
	c.checkAlertname(f, m)
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
		if t := c.compiled(v.line, section+"."+v.name, v.name, v.src); t != nil {
			out = append(out, *t)
		}
	}
	return out
}

func (c *compiler) compiled(line int, key, name, src string) *compiled {
	t := c.template(line, key, src)
	if t == nil {
		return nil
	}
	ct := &compiled{name: model.LabelName(name), tmpl: t, line: line}
	if c.fast {
		ct.fast, _ = compileFast(t, funcs)
	}
	return ct
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
	d.labels = model.LabelSet{}
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
		try(m.generatorURL.line, m.generatorURL.tmpl)
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
	Alert *alert.Alert
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
	sc := scratchPool.Get().(*scratch)
	defer func() {
		sc.data = Data{} // keeps nothing of the event alive
		sc.out.reset()
		scratchPool.Put(sc)
	}()
	d := &sc.data
	d.fill(ev, received, m)

	// Labels keep their empty values while annotations render, since
	// templates see them (.Labels); an annotation is left out at once.
	labels := make(model.LabelSet, len(m.labels)+len(m.static)+2)
	emptyLabel := false
	// A label keeps its empty value for now and is one line; an
	// annotation may hold several.
	render := func(dst model.LabelSet, set []compiled, max int, label bool) {
		for i := range set {
			c := &set[i]
			s, err := c.execute(sc, d)
			if err != nil {
				res.Errors = append(res.Errors, fmt.Errorf("%s: %w", c.tmpl.Name(), err))
				delete(dst, c.name)
				continue
			}
			switch v := m.clean(s, max, !label); {
			case v != "":
				dst[c.name] = model.LabelValue(v)
			case label:
				dst[c.name] = ""
				emptyLabel = true
			default:
				delete(dst, c.name)
			}
		}
	}
	render(labels, m.labels, m.maxLabel, true)
	for _, s := range m.static {
		v := m.clean(s.value, m.maxLabel, false)
		labels[s.name] = model.LabelValue(v)
		emptyLabel = emptyLabel || v == ""
	}
	for _, o := range matched {
		render(labels, o.labels, m.maxLabel, true)
	}
	// Rendered labels, empty ones included, are what annotations and
	// generator_url see; the copy text/template needs is made only when a
	// template runs on it.
	d.labels = labels
	if m.slowAfterLabels {
		d.Labels = make(map[string]string, len(labels))
		for k, v := range labels {
			d.Labels[string(k)] = string(v)
		}
	}

	annotations := make(model.LabelSet, len(m.annotations)+2)
	render(annotations, m.annotations, m.maxAnno, false)
	for _, o := range matched {
		render(annotations, o.annotations, m.maxAnno, false)
	}

	a := &alert.Alert{
		Labels:      labels,
		Annotations: annotations,
		StartsAt:    ev.Time,
		EndsAt:      received.Add(ttl),
	}
	// An event time ahead of our clock (skew) must not start the alert in
	// the future: Alertmanager would reject or never notify it.
	if a.StartsAt.IsZero() || a.StartsAt.After(received) {
		a.StartsAt = received
	}
	if m.generatorURL != nil {
		if s, err := m.generatorURL.execute(sc, d); err != nil {
			res.Errors = append(res.Errors, fmt.Errorf("generator_url: %w", err))
		} else if u := strings.TrimSpace(s); u != "" {
			// One unparsable URL would make Alertmanager reject the
			// whole batch (422), so leave it out instead.
			if _, err := url.Parse(u); err != nil {
				res.Errors = append(res.Errors, fmt.Errorf("generator_url: %q is not a valid URL", u))
			} else {
				a.GeneratorURL = u
			}
		}
	}
	// A label that renders empty is left out.
	if emptyLabel {
		for k, v := range labels {
			if v == "" {
				delete(labels, k)
			}
		}
	}
	res.Alert = a
	return res
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

// clean makes a rendered value safe to send: without control characters
// (but for newlines and tabs when lines is set), trimmed, template
// delimiters neutralised, and cut to max bytes.
func (m *Mapping) clean(s string, max int, lines bool) string {
	s = strings.TrimSpace(stripControl(s, lines))
	if m.escape {
		s = EscapeTemplateDelimiters(s)
	}
	return Truncate(s, max)
}

// StripControl removes the control characters (C0, DEL and C1) from s, so
// that a NUL or a terminal escape sequence an event carries, escaped in its
// JSON, reaches neither a label value nor the people who read it. A label
// value is one line: newlines and tabs go too.
func StripControl(s string) string { return stripControl(s, false) }

// stripControl is StripControl keeping newlines and tabs when lines is set,
// for annotations, which may hold several lines.
func stripControl(s string, lines bool) string {
	i := indexControl(s, lines)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for _, r := range s[i:] {
		if !isControl(r, lines) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// indexControl returns the index of the first control character of s, or
// -1. Most values have none, so it skips eight bytes at a time while none
// of them can start one (a byte below 0x20, DEL, or the 0xC2 that leads
// U+0080 to U+009F), and looks closer only at the eight bytes where one
// might; byteIndexControl, the plain loop, is its oracle in the tests.
func indexControl(s string, lines bool) int {
	const (
		lo = 0x0101010101010101
		hi = 0x8080808080808080
	)
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		// Nonzero when some byte is below 0x20, or is 0x7F, or is 0xC2:
		// the tests for a zero byte (Hacker's Delight 6-1) of x − 0x20
		// in every byte's place, and of x with those bytes xored out.
		below := (x - 0x20*lo) &^ x
		del, c2 := x^(0x7f*lo), x^(0xc2*lo)
		if (below|((del-lo)&^del)|((c2-lo)&^c2))&hi == 0 {
			continue
		}
		if j := byteIndexControl(s, i, i+8, lines); j >= 0 {
			return j
		}
	}
	return byteIndexControl(s, i, len(s), lines)
}

// byteIndexControl is indexControl one byte at a time over s[from:to]; the
// byte after a 0xC2 may be past to.
func byteIndexControl(s string, from, to int, lines bool) int {
	for i := from; i < to; i++ {
		c := s[i]
		switch {
		case c < 0x20 || c == 0x7f:
			if !lines || (c != '\n' && c != '\t') {
				return i
			}
		case c == 0xc2 && i+1 < len(s) && s[i+1] >= 0x80 && s[i+1] <= 0x9f: // U+0080 to U+009F
			return i
		}
	}
	return -1
}

func isControl(r rune, lines bool) bool {
	if lines && (r == '\n' || r == '\t') {
		return false
	}
	return r < 0x20 || (r >= 0x7f && r <= 0x9f)
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
	return text.Cut(s, cut) + truncMark
}
