package mapping

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/falco"
)

// alertnameHint is how to fix a mapping without alertname.
const alertnameHint = "every alert needs an alertname label (Alertmanager groups, routes and shows alerts by it); set one under labels, such as alertname: '{{ camelCase .Rule }}' as mapping/default.yaml does"

// checkAlertname refuses a mapping that can make an alert without
// alertname: none set (a file with only ttl, say, has no labels at all),
// set to an empty value, removed by an override, or a template that
// renders nothing for a sample event.
func (c *compiler) checkAlertname(f *file, m *Mapping) {
	set := false
	for _, s := range f.StaticLabels {
		if s.name == "alertname" {
			set = true
			if strings.TrimSpace(s.src) == "" {
				c.errorf(s.line, "static_labels.alertname", "is empty; %s", alertnameHint)
			}
		}
	}
	for _, l := range f.Labels {
		if l.name == "alertname" {
			set = true
			if strings.TrimSpace(l.src) == "" {
				c.errorf(l.line, "labels.alertname", "is empty; %s", alertnameHint)
			}
		}
	}
	if !set {
		c.errorf(0, "labels.alertname", "missing; %s", alertnameHint)
	}
	for i, o := range f.Overrides {
		for _, l := range o.Labels {
			if l.name == "alertname" && strings.TrimSpace(l.src) == "" {
				c.errorf(l.line, fmt.Sprintf("overrides[%d].labels.alertname", i), "removes alertname; %s", alertnameHint)
			}
		}
	}
	if len(c.errs) > 0 {
		return
	}
	ev := &falco.Event{
		Rule: "Sample rule", Priority: falco.PriorityWarning, Time: time.Unix(0, 0).UTC(),
		Output: "sample", Source: "syscall", Hostname: "host", Tags: []string{"sample"},
		Fields: falco.Fields{},
	}
	d := newData(ev, time.Unix(0, 0).UTC(), m)
	for _, l := range m.labels {
		if l.name != "alertname" {
			continue
		}
		var buf bytes.Buffer
		if err := l.tmpl.Execute(&buf, d); err == nil && strings.TrimSpace(buf.String()) == "" {
			c.errorf(l.line, "labels.alertname", "renders empty for a sample event (rule %q); %s", ev.Rule, alertnameHint)
		}
	}
}
