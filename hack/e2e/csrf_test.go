package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/falco-am-bridge/falco-am-bridge/hack/harness"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/status"
)

// TestFormsFromOtherOriginsRefused: a page of another origin that a user
// of the bridge opens in Chromium auto-submits forms, in every encoding a
// form has, to POST /, POST /-/reload and POST /api/v1/translate. Each is
// answered 4xx, no event is taken, no alert reaches Alertmanager and no
// reload happens; then Falco's own kind of POST still goes through.
func TestFormsFromOtherOriginsRefused(t *testing.T) {
	chromium := harness.Binary(t, "CHROMIUM_BIN")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	s := startStack(ctx, t, stackOptions{})

	// The forged event is valid JSON in each encoding that can carry it:
	// text/plain sends name=value, so the = lands inside a string.
	event := `{"rule":"Forged","priority":"Critical","time":"2026-01-02T10:00:00Z","output":"forged","hostname":"victim","pad":"`
	targets := []struct{ handler, body string }{
		{"/", event},
		{"/-/reload", event},
		{"/api/v1/translate", `{"event":` + event[:len(event)-len(`,"pad":"`)] + `},"pad":"`},
	}
	enctypes := []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"}
	var page strings.Builder
	page.WriteString("<!doctype html><title>elsewhere</title>\n")
	n := 0
	for _, tg := range targets {
		for _, enc := range enctypes {
			fmt.Fprintf(&page, `<iframe name="f%d"></iframe><form id="form%d" target="f%d" method="POST" action="%s" enctype="%s">`+
				`<input type="hidden" name="%s" value="&quot;}"></form>`+"\n",
				n, n, n, html.EscapeString(s.bridge.URL+tg.handler), enc, html.EscapeString(tg.body))
			n++
		}
	}
	page.WriteString(`<script>for (const f of document.forms) f.submit(); document.title = "submitted";</script>`)
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(page.String()))
	}))
	defer elsewhere.Close()
	_, port, err := net.SplitHostPort(elsewhere.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	// The bridge is at 127.0.0.1 on its own port: localhost is another
	// site, 127.0.0.1 on another port the same site but another origin.
	origins := []string{"http://localhost:" + port, "http://127.0.0.1:" + port}

	answered := func(handler string) (all, refused float64) {
		return requestsByClass(ctx, t, s.bridge.URL, handler)
	}
	before := map[string][2]float64{}
	for _, tg := range targets {
		all, refused := answered(tg.handler)
		before[tg.handler] = [2]float64{all, refused}
	}

	b := newBrowser(ctx, t, chromium)
	for _, origin := range origins {
		do(t, b, chromedp.Navigate(origin+"/"))
		waitJS(t, b, `document.title == "submitted"`)
	}
	// Every form's request was answered.
	want := float64(len(origins) * len(enctypes))
	for _, tg := range targets {
		waitUntil(ctx, t, "the forms posted to "+tg.handler, func() bool {
			all, _ := answered(tg.handler)
			return all-before[tg.handler][0] >= want
		})
	}
	for _, tg := range targets {
		all, refused := answered(tg.handler)
		all, refused = all-before[tg.handler][0], refused-before[tg.handler][1]
		if all != want || refused != want {
			t.Errorf("%s: %v requests from forms, %v of them answered 4xx; want %v, all 4xx", tg.handler, all, refused, want)
		}
	}
	if got := metric(ctx, t, s.bridge, "falco_am_bridge_events_received_total"); got != 0 {
		t.Errorf("events_received_total = %v after the forms", got)
	}
	if got := alertCount(ctx, t, s.ams[0].URL); got != 0 {
		t.Errorf("%d alerts in Alertmanager after the forms", got)
	}
	if st := bridgeStatus(t, s.bridge.URL); !st.Mapping.ReloadedAt.IsZero() {
		t.Errorf("a form made the bridge reload at %s", st.Mapping.ReloadedAt)
	}

	// What Falco sends, and a reload from a client that is not a
	// browser, still work.
	s.send(t, []byte(`{"rule":"Real event","priority":"Critical","time":"`+time.Now().UTC().Format(time.RFC3339)+`","output":"real","hostname":"node-1"}`))
	waitUntil(ctx, t, "Falco's event in Alertmanager", func() bool { return alertCount(ctx, t, s.ams[0].URL) == 1 })
	resp, err := http.Post(s.bridge.URL+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if st := bridgeStatus(t, s.bridge.URL); resp.StatusCode != http.StatusOK || st.Mapping.ReloadedAt.IsZero() {
		t.Fatalf("POST /-/reload from a script: %d, last reload at %s", resp.StatusCode, st.Mapping.ReloadedAt)
	}
}

// bridgeStatus returns what /api/v1/status says now.
func bridgeStatus(t *testing.T, bridgeURL string) status.Status {
	t.Helper()
	var st status.Status
	if err := json.Unmarshal([]byte(get(t, bridgeURL+"/api/v1/status")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// requestsByClass returns, from the bridge's http_requests_total, how
// many requests handler answered, and how many of them with a 4xx code.
func requestsByClass(ctx context.Context, t *testing.T, bridgeURL, handler string) (all, refused float64) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, bridgeURL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	mf := families["falco_am_bridge_http_requests_total"]
	if mf == nil {
		t.Fatal("no falco_am_bridge_http_requests_total")
	}
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, lp := range m.GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		if labels["handler"] != handler {
			continue
		}
		all += m.GetCounter().GetValue()
		if strings.HasPrefix(labels["code"], "4") {
			refused += m.GetCounter().GetValue()
		}
	}
	return all, refused
}
