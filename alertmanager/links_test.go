package alertmanager_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/falco-am-bridge/falco-am-bridge/hack/capture/capture"
	"github.com/falco-am-bridge/falco-am-bridge/hack/harness"
)

// hostile label values: everything that could break a URL, Slack markup,
// the UI's matcher syntax or a regexp.
var hostile = []string{
	`web-0"}, evil="x`,
	`C:\tmp.x+y`,
	"a&b<c>d|e #f %41 g+h",
	"line\nbreak",
	`trailing\`,
	"ünï €",
}

// TestLinks checks the links of the shipped templates end to end: a real
// Alertmanager renders the Slack and PagerDuty notifications, and the
// silence link of each Slack message, read as the Alertmanager UI reads it,
// makes a silence that mutes exactly its alert and not a near twin.
func TestLinks(t *testing.T) {
	bin := harness.Binary(t, "ALERTMANAGER_BIN")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	receiver := capture.New(nil)
	if err := receiver.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = receiver.Close() })
	dir := t.TempDir()
	cfg, err := harness.WriteAlertmanagerOverlay(shippedConfig, dir, harness.AlertmanagerOverlay{
		GroupWait:           time.Second,
		GroupInterval:       time.Second,
		RepeatInterval:      time.Hour,
		SlackAPIURL:         receiver.URL() + "/slack/services/T000/B000/XXXX",
		PagerDutyRoutingKey: "R0UTINGKEY00000000000000000000000",
		PagerDutyURL:        receiver.URL() + "/pagerduty/v2/enqueue",
	})
	if err != nil {
		t.Fatal(err)
	}
	am := harness.StartAlertmanager(ctx, t, harness.AlertmanagerOptions{Bin: bin, ConfigFile: cfg, DataDir: dir})

	start := time.Now().Add(-10 * time.Second).UTC().Truncate(time.Millisecond)
	var alerts, twins []alert
	for i, v := range hostile {
		a := falcoAlert("Terminal shell in container", "TerminalShellInContainer", "critical", fmt.Sprintf("pod-%d", i), "bash", start)
		a.Labels["container_name"] = v
		a.EndsAt = start.Add(10 * time.Minute)
		a.Annotations["runbook_url"] = "https://runbooks.example.com/falco/shell?team=a&x=1|2"
		a.Annotations["dashboard_url"] = "https://grafana.example.com/d/falco?var-pod=pod-" + fmt.Sprint(i)
		a.GeneratorURL = "https://falco.example.com/events?rule=shell&pod=pod-" + fmt.Sprint(i)
		alerts = append(alerts, a)
		// The same alert, but for one character: its own group, never
		// to be muted by the other's silence. It is a warning: Slack only.
		twin := falcoAlert("Terminal shell in container", "TerminalShellInContainer", "warning", fmt.Sprintf("pod-%d", i), "bash", start)
		twin.Labels["container_name"] = v + "z"
		twin.EndsAt = a.EndsAt
		twins = append(twins, twin)
	}
	// A javascript: link in an annotation must not become a link.
	alerts[0].Annotations["runbook_url"] = "javascript:alert(1)"
	// Five alerts of one group (they differ in a label that group_by
	// leaves out) make one message showing three. They start now:
	// Alertmanager flushes a new group at once when its first alert
	// started more than group_wait ago, before the other four are in.
	var crowd []alert
	now := time.Now().UTC().Truncate(time.Millisecond)
	for i := range 5 {
		a := falcoAlert("Read sensitive file untrusted", "ReadSensitiveFileUntrusted", "warning", "crowd", "cat /etc/shadow", now)
		a.Labels["source"] = fmt.Sprintf("source-%d", i)
		a.EndsAt = now.Add(10 * time.Minute)
		crowd = append(crowd, a)
	}
	postAlerts(t, am.URL, append(append(alerts, twins...), crowd...)...)

	n := 2*len(hostile) + 1
	slackRecs, err := receiver.Wait(ctx, capture.KindSlack, func(r []capture.Record) bool { return len(r) >= n })
	if err != nil {
		t.Fatalf("%v; got %d Slack messages", err, len(slackRecs))
	}
	pdRecs, err := receiver.Wait(ctx, capture.KindPagerDuty, func(r []capture.Record) bool { return len(r) >= len(hostile) })
	if err != nil {
		t.Fatalf("%v; got %d PagerDuty events", err, len(pdRecs))
	}

	links := regexp.MustCompile(`<([^|<>]+)\|([^<>]+)>`)
	found := 0
	for _, rec := range slackRecs {
		m, err := rec.Slack()
		if err != nil {
			t.Fatal(err)
		}
		idx := alertIndex(alerts, m.Text())
		if idx < 0 {
			continue // a twin's or the crowd's message
		}
		a := alerts[idx]
		got := map[string]string{}
		for _, l := range links.FindAllStringSubmatch(m.Text(), -1) {
			got[l[2]] = strings.ReplaceAll(l[1], "&amp;", "&")
		}
		t.Run(fmt.Sprintf("slack %q", hostile[idx]), func(t *testing.T) {
			found++
			wantRunbook := "https://runbooks.example.com/falco/shell?team=a&x=1%7C2"
			if idx == 0 {
				wantRunbook = ""
			}
			for text, want := range map[string]string{
				"Runbook":   wantRunbook,
				"Source":    a.GeneratorURL,
				"Dashboard": a.Annotations["dashboard_url"],
			} {
				if got[text] != want {
					t.Errorf("%s link = %q, want %q\n%s", text, got[text], want, m.Text())
				}
			}
			silenceLink := got["Silence"]
			matchers, err := uiMatchers(silenceLink, am.URL, "/silences/new")
			if err != nil {
				t.Fatalf("silence link %q: %v", silenceLink, err)
			}
			id := createSilence(ctx, t, am.URL, matchers)
			states := alertStates(ctx, t, am.URL, id)
			if s := states[a.Labels["container_name"]+"|"+a.Labels["severity"]]; s != "suppressed" {
				t.Errorf("the alert is %q after the silence from %q (matchers %v), want suppressed", s, silenceLink, matchers)
			}
			if s := states[twins[idx].Labels["container_name"]+"|warning"]; s == "suppressed" {
				t.Errorf("the silence from %q (matchers %v) also mutes the twin alert", silenceLink, matchers)
			}
		})
	}
	if found != len(hostile) {
		t.Errorf("found Slack messages for %d of %d alerts", found, len(hostile))
	}
	crowded := false
	for _, rec := range slackRecs {
		m, _ := rec.Slack()
		if !strings.Contains(m.Title(), "pod shop/crowd") {
			continue
		}
		crowded = true
		if !strings.HasPrefix(m.Title(), "[FIRING:5] ") || strings.Count(m.Text(), "|Silence>") != 3 ||
			!strings.Contains(m.Text(), "_…and 2 more: <"+am.URL+"/#/alerts?filter=") {
			t.Errorf("a group of five: title %q, text:\n%s", m.Title(), m.Text())
		}
	}
	if !crowded {
		t.Error("no Slack message for the group of five")
	}

	for _, rec := range pdRecs {
		var ev capture.PagerDutyEvent
		decode(t, rec, &ev)
		byText := map[string]string{}
		for _, l := range ev.Links {
			byText[l.Text] = l.Href
		}
		if !strings.HasPrefix(ev.ClientURL, am.URL+"/#/alerts?filter=") || ev.Client != "Alertmanager" {
			t.Errorf("client %q client_url %q", ev.Client, ev.ClientURL)
		}
		if _, err := uiMatchers(ev.ClientURL, am.URL, "/alerts"); err != nil {
			t.Errorf("client_url %q: %v", ev.ClientURL, err)
		}
		if byText["Source"] == "" || !strings.HasPrefix(byText["Source"], "https://falco.example.com/events?rule=shell&pod=pod-") ||
			!strings.HasPrefix(byText["Dashboard"], "https://grafana.example.com/d/falco") ||
			!strings.HasPrefix(byText["Silence in Alertmanager"], am.URL+"/#/silences/new?filter=") {
			t.Errorf("PagerDuty links %v", ev.Links)
		}
		if ev.Payload.Component == "pod-0" {
			if _, ok := byText["Runbook"]; ok {
				t.Errorf("javascript: runbook linked: %v", ev.Links)
			}
		} else if byText["Runbook"] != "https://runbooks.example.com/falco/shell?team=a&x=1|2" {
			t.Errorf("PagerDuty runbook link %q", byText["Runbook"])
		}
	}
}

// alertIndex finds which alert a Slack text is about, by its pod and its
// silence link holding its severity (twins are warnings).
func alertIndex(alerts []alert, text string) int {
	for i, a := range alerts {
		if strings.Contains(text, "pod "+a.Labels["namespace"]+"/"+a.Labels["pod_name"]+",") &&
			strings.Contains(text, "%22critical%22") {
			return i
		}
	}
	return -1
}

// matcher is one matcher of a UI filter, as the UI turns it into a silence.
type matcher struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	IsRegex bool   `json:"isRegex"`
	IsEqual bool   `json:"isEqual"`
}

// uiMatchers reads a link to Alertmanager's UI as the UI (0.31, Elm) does:
// the fragment's query is percent-decoded ("+" stays "+") and the filter
// parsed by the grammar of ui/app/src/Utils/Filter.elm, in which a quoted
// value runs to the next unescaped quote and keeps its backslashes.
func uiMatchers(link, base, view string) ([]matcher, error) {
	rest, ok := strings.CutPrefix(link, base+"/#"+view+"?filter=")
	if !ok {
		return nil, fmt.Errorf("not a link to %s%s", base, view)
	}
	if strings.ContainsAny(rest, "&# \n<>|\"") {
		return nil, errors.New("the filter is not fully URL-encoded")
	}
	filter, err := url.PathUnescape(rest)
	if err != nil {
		return nil, err
	}
	return parseFilter(filter)
}

func parseFilter(s string) ([]matcher, error) {
	p := &filterParser{s: s}
	p.spaces()
	if !p.eat("{") {
		return nil, p.fail("{")
	}
	var out []matcher
	for {
		p.spaces()
		if p.eat("}") && len(out) == 0 {
			break
		}
		m, err := p.matcher()
		if err != nil {
			return nil, err
		}
		out = append(out, m)
		p.spaces()
		if p.eat(",") {
			continue
		}
		if !p.eat("}") {
			return nil, p.fail(", or }")
		}
		break
	}
	if p.i != len(p.s) {
		return nil, p.fail("the end")
	}
	return out, nil
}

type filterParser struct {
	s string
	i int
}

func (p *filterParser) fail(want string) error {
	return fmt.Errorf("filter %q: want %s at %d", p.s, want, p.i)
}

func (p *filterParser) eat(tok string) bool {
	if strings.HasPrefix(p.s[p.i:], tok) {
		p.i += len(tok)
		return true
	}
	return false
}

func (p *filterParser) spaces() {
	for p.i < len(p.s) && p.s[p.i] == ' ' {
		p.i++
	}
}

func (p *filterParser) matcher() (matcher, error) {
	start := p.i
	for p.i < len(p.s) && (p.s[p.i] == '_' || p.s[p.i] >= 'a' && p.s[p.i] <= 'z' || p.s[p.i] >= 'A' && p.s[p.i] <= 'Z' || p.s[p.i] >= '0' && p.s[p.i] <= '9') {
		p.i++
	}
	m := matcher{Name: p.s[start:p.i]}
	if m.Name == "" {
		return m, p.fail("a label name")
	}
	p.spaces()
	switch {
	case p.eat("=~"):
		m.IsRegex, m.IsEqual = true, true
	case p.eat("!~"):
		m.IsRegex = true
	case p.eat("!="):
	case p.eat("="):
		m.IsEqual = true
	default:
		return m, p.fail("an operator")
	}
	p.spaces()
	if !p.eat(`"`) {
		return m, p.fail(`"`)
	}
	start = p.i
	for {
		if p.i >= len(p.s) {
			return m, p.fail(`a closing "`)
		}
		switch p.s[p.i] {
		case '"':
			m.Value = p.s[start:p.i]
			p.i++
			return m, nil
		case '\\':
			p.i += 2 // the UI keeps the escape as it is
		default:
			p.i++
		}
	}
}

func createSilence(ctx context.Context, t *testing.T, amURL string, ms []matcher) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"matchers": ms, "startsAt": time.Now().UTC(), "endsAt": time.Now().Add(time.Hour).UTC(),
		"createdBy": "test", "comment": "from the Slack link",
	})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, amURL+"/api/v2/silences", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		SilenceID string `json:"silenceID"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil {
		t.Fatalf("POST /api/v2/silences with %v: %s", ms, resp.Status)
	}
	return out.SilenceID
}

// alertStates returns "container_name|severity" -> whether the silence id
// mutes it ("suppressed") or not ("active").
func alertStates(ctx context.Context, t *testing.T, amURL, id string) map[string]string {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, amURL+"/api/v2/alerts", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got []struct {
		Labels map[string]string `json:"labels"`
		Status struct {
			SilencedBy []string `json:"silencedBy"`
		} `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, a := range got {
		state := "active"
		for _, s := range a.Status.SilencedBy {
			if s == id {
				state = "suppressed"
			}
		}
		out[a.Labels["container_name"]+"|"+a.Labels["severity"]] = state
	}
	return out
}
