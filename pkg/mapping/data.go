package mapping

import (
	"slices"
	"strings"
	"text/template"
	"time"
	"unicode"

	amtemplate "github.com/prometheus/alertmanager/template"
	"github.com/prometheus/common/model"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/falco"
)

// Data is what a mapping template sees.
type Data struct {
	Rule       string
	Priority   string // as Falco writes it: Warning
	Severity   string // from the mapping's severities
	Source     string
	Hostname   string
	Output     string
	Message    string
	UUID       string
	Tags       []string
	Time       time.Time // the event's time
	ReceivedAt time.Time // when the bridge received the event
	// Labels holds the rendered labels for annotations and generator_url,
	// which are rendered after the labels. Templates compiled to a fast
	// path read them from labels instead, and Labels is then left nil
	// unless some template runs on text/template.
	Labels map[string]string

	ev         *falco.Event
	fieldsJSON string
	jsonDone   bool
	labels     model.LabelSet // the rendered labels, for fast templates
}

func newData(ev *falco.Event, received time.Time, m *Mapping) *Data {
	d := new(Data)
	d.fill(ev, received, m)
	return d
}

// fill sets d for ev, as newData makes it.
func (d *Data) fill(ev *falco.Event, received time.Time, m *Mapping) {
	sev := ""
	if p := ev.Priority; p >= 0 && int(p) < len(m.severities) {
		sev = m.severities[p]
	}
	*d = Data{
		Rule: ev.Rule, Priority: ev.Priority.String(), Severity: sev, Source: ev.Source,
		Hostname: ev.Hostname, Output: ev.Output, Message: ev.Message, UUID: ev.UUID,
		Tags: ev.Tags, Time: ev.Time, ReceivedAt: received, ev: ev,
	}
}

// Field returns the value of the first of the named Falco fields that has
// one, or "".
func (d *Data) Field(names ...string) string { return d.ev.Fields.Get(names...) }

// FieldsJSON returns every output field as one compact JSON object.
func (d *Data) FieldsJSON() string {
	if !d.jsonDone {
		d.fieldsJSON, d.jsonDone = d.ev.Fields.JSON(), true
	}
	return d.fieldsJSON
}

// HasTag reports whether the event carries tag.
func (d *Data) HasTag(tag string) bool { return slices.Contains(d.ev.Tags, tag) }

// funcs are Alertmanager's template functions, so what users know from
// Alertmanager works here, plus the bridge's own.
var funcs = func() template.FuncMap {
	f := template.FuncMap{}
	for k, v := range amtemplate.DefaultFuncs {
		f[k] = v
	}
	f["camelCase"] = CamelCase
	f["sortAlpha"] = sortAlpha
	f["mitreTactics"] = MitreTactics
	f["mitreTechniques"] = MitreTechniques
	return f
}()

// sortAlpha returns a sorted copy of s: {{ join "," (sortAlpha .Tags) }}.
func sortAlpha(s []string) []string { return slices.Sorted(slices.Values(s)) }

// CamelCase joins the words of s, each starting with a capital letter:
// "Terminal shell in container" becomes "TerminalShellInContainer". Anything
// but letters and digits separates words.
func CamelCase(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	upper := true
	for _, r := range s {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			upper = true
			continue
		}
		if upper {
			r = unicode.ToUpper(r)
			upper = false
		}
		b.WriteRune(r)
	}
	return b.String()
}
