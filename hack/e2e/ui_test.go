package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/falco-am-bridge/falco-am-bridge/hack/harness"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/status"
)

// hostileEvent carries markup where attackers can put it: the rule name,
// the output and a command line. The page must show it as text.
const hostileEvent = `{"rule":"Hostile <img src=x onerror=\"window.__pwned='img'\"> rule","priority":"Critical",` +
	`"time":"2026-01-02T10:00:00Z","source":"syscall","hostname":"node-x",` +
	`"output":"<script>window.__pwned='script'</script> spawned",` +
	`"output_fields":{"proc.cmdline":"sh -c '<script>window.__pwned=\"cmdline\"</script><img src=x onerror=window.__pwned=1>'",` +
	`"k8s.ns.name":"ns<b>bold</b>","k8s.pod.name":"pod-1","container.name":"c"},"tags":["shell"]}`

// brokenMapping has an unclosed action on line 3.
const brokenMapping = "labels:\n  alertname: '{{ camelCase .Rule }}'\n  team: '{{ .Field \"k8s.ns.name\" '\n"

// TestUIInBrowser drives the status page and the playground in a real
// Chromium against the bridge binary and a real Alertmanager.
func TestUIInBrowser(t *testing.T) {
	chromium := harness.Binary(t, "CHROMIUM_BIN")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s := startStack(ctx, t, stackOptions{})
	benign, err := os.ReadFile("../../examples/events/shell-in-pod-critical.json")
	if err != nil {
		t.Fatal(err)
	}
	s.send(t, benign, []byte(hostileEvent))
	want := expected(t, benign)
	// Both alerts reached Alertmanager before the page is looked at.
	before := waitStatus(ctx, t, s.bridge.URL, func(st status.Status) bool {
		return len(st.Alertmanagers) > 0 && st.Alertmanagers[0].AlertsSent >= 2
	})
	runningSource := get(t, s.bridge.URL+"/playground")

	b := newBrowser(ctx, t, chromium)
	shots := os.Getenv("UI_SCREENSHOTS")

	t.Run("status page", func(t *testing.T) {
		do(t, b, chromedp.Navigate(s.bridge.URL+"/"))
		// The events, newest first: the hostile one, then the benign one
		// with the alert it became.
		waitJS(t, b, `document.querySelectorAll("#live li.event.alert").length == 2`)
		li := evalJS[string](t, b, `[...document.querySelectorAll("#live li.event")].find(e => e.querySelector(".rule").textContent == `+jsString(string(want.Labels["falco_rule"]))+`).textContent`)
		for _, l := range []string{"alertname=" + string(want.Labels["alertname"]), "pod_name=" + string(want.Labels["pod_name"])} {
			if !strings.Contains(li, l) {
				t.Errorf("the event's entry does not show label %s:\n%s", l, li)
			}
		}
		// The Alertmanager and its queue.
		row := evalJS[string](t, b, `document.querySelector("#live tr.target").dataset.url`)
		if row != s.ams[0].URL {
			t.Errorf("first target row is %q, want %q", row, s.ams[0].URL)
		}
		queue := evalJS[string](t, b, `document.querySelector("#live tr.target td.queue").textContent.trim()`)
		if !strings.HasPrefix(queue, "0 / 10000") {
			t.Errorf("queue cell %q, want 0 / 10000", queue)
		}
		// The page refreshes itself: wait for one refresh, then check
		// that the hostile text is text and nothing of it ran.
		waitJS(t, b, `document.getElementById("refreshed").textContent.startsWith("updated")`)
		// Pause it, so the page holds still for the checks and the
		// screenshot.
		do(t, b, chromedp.Evaluate[chromedp.Void](`document.getElementById("pause").checked = true; document.querySelector("#live li.event details").open = true`))
		waitJS(t, b, `document.documentElement.scrollHeight > 1000`)
		text := evalJS[string](t, b, `document.querySelector("#live li.event").textContent`)
		for _, s := range []string{`<script>window.__pwned='script'</script>`, `<img src=x onerror=window.__pwned=1>`, `Hostile <img src=x onerror="window.__pwned='img'"> rule`, "ns<b>bold</b>"} {
			if !strings.Contains(text, s) {
				t.Errorf("the hostile event does not show %q as text:\n%s", s, text)
			}
		}
		if got := evalJS[string](t, b, `String(window.__pwned)`); got != "undefined" {
			t.Errorf("injected script ran: window.__pwned = %s", got)
		}
		if n := evalJS[int](t, b, `document.querySelectorAll("#live img, #live script, script:not([src])").length + [...document.querySelectorAll("#live b")].filter(e => e.textContent == "bold").length`); n != 0 {
			t.Errorf("%d elements came from event text", n)
		}
		screenshot(t, b, shots, "status-page.png")
	})

	t.Run("playground", func(t *testing.T) {
		do(t, b, chromedp.Navigate(s.bridge.URL+"/playground"))
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, benign, "", "  "); err != nil {
			t.Fatal(err)
		}
		setValue(t, b, "event", pretty.String())
		waitJS(t, b, `document.getElementById("alerts").textContent.includes(`+jsString(`"alertname": "`+string(want.Labels["alertname"])+`"`)+`)`)

		// A change of the mapping that adds a label shows in the diff.
		edited := evalJS[string](t, b, `document.getElementById("mapping").value`) + "\n# playground edit\n"
		edited = strings.Replace(edited, "labels:\n", "labels:\n  team: '{{ .Field \"k8s.ns.name\" }}'\n", 1)
		setValue(t, b, "mapping", edited)
		waitJS(t, b, `[...document.querySelectorAll("#diff tr.diff-added td")].some(td => td.textContent == "team")`)
		screenshot(t, b, shots, "playground.png")

		setValue(t, b, "mapping", brokenMapping)
		waitJS(t, b, `document.querySelector("#errors li.error-mapping_file") != null`)
		line := evalJS[string](t, b, `document.querySelector("#errors li.error-mapping_file").dataset.line`)
		msg := evalJS[string](t, b, `document.querySelector("#errors li.error-mapping_file").textContent`)
		if line != "3" || !strings.HasPrefix(msg, "mapping.yaml:3:") {
			t.Errorf("template error shown as line %q: %s", line, msg)
		}
		screenshot(t, b, shots, "playground-error.png")
	})

	t.Run("runaway template", func(t *testing.T) {
		// Never ends: the child process that runs it is killed at the
		// deadline, and the next translation works.
		req, _ := json.Marshal(map[string]any{"event": json.RawMessage(benign), "mapping": "labels:\n  alertname: '{{ range 1000000000000 }}{{ end }}x'\n"})
		code, body := post(t, s.bridge.URL+"/api/v1/translate", req)
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "took longer than") {
			t.Fatalf("runaway template: %d %s", code, body)
		}
		req, _ = json.Marshal(map[string]any{"event": json.RawMessage(benign)})
		code, body = post(t, s.bridge.URL+"/api/v1/translate", req)
		if code != http.StatusOK || !strings.Contains(body, string(want.Labels["alertname"])) {
			t.Fatalf("translation after a runaway one: %d %s", code, body)
		}
	})

	t.Run("running bridge unchanged", func(t *testing.T) {
		after := waitStatus(ctx, t, s.bridge.URL, func(status.Status) bool { return true })
		if after.Events.Received != before.Events.Received || after.Alertmanagers[0].AlertsSent != before.Alertmanagers[0].AlertsSent {
			t.Errorf("events or alerts changed: before %+v %+v, after %+v %+v", before.Events, before.Alertmanagers[0], after.Events, after.Alertmanagers[0])
		}
		if after.Mapping != before.Mapping {
			t.Errorf("mapping changed: before %+v, after %+v", before.Mapping, after.Mapping)
		}
		if got := get(t, s.bridge.URL+"/playground"); got != runningSource {
			t.Error("the running mapping's source changed")
		}
		// The running mapping still makes the alert it made.
		s.send(t, benign)
		last := waitStatus(ctx, t, s.bridge.URL, func(st status.Status) bool { return len(st.Recent.Events) == 3 })
		if a := last.Recent.Events[0].Alert; a == nil || a.Labels["team"] != "" || a.Labels["alertname"] != want.Labels["alertname"] {
			t.Errorf("the running mapping changed: %+v", a)
		}
	})
}

func newBrowser(ctx context.Context, t *testing.T, bin string) context.Context {
	t.Helper()
	dir, err := os.MkdirTemp("", "falco-am-bridge-chromium")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox, // tests run as root in CI
		chromedp.DisableGPU,
		chromedp.UserDataDir(dir),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1366, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	b, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		// Chromium's helpers can write in the directory a moment after
		// the browser is gone.
		for range 50 {
			if os.RemoveAll(dir) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	do(t, b) // start the browser
	return b
}

func do(t *testing.T, b context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(b, steps...); err != nil {
		t.Fatal(err)
	}
}

func evalJS[T any](t *testing.T, b context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(b, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// waitJS waits until expr is true in the page.
func waitJS(t *testing.T, b context.Context, expr string) {
	t.Helper()
	if _, err := chromedp.Run(b, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		body, _ := chromedp.Run(b, chromedp.Evaluate[string](`document.body.innerText`))
		t.Fatalf("waiting for %s: %v\npage:\n%s", expr, err, body)
	}
}

// setValue sets a textarea as typing would, firing its input event.
func setValue(t *testing.T, b context.Context, id, value string) {
	t.Helper()
	do(t, b, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
		`(() => { const e = document.getElementById(%s); e.value = %s; e.dispatchEvent(new Event("input")); })()`,
		jsString(id), jsString(value))))
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// screenshot saves the whole page into dir (UI_SCREENSHOTS), if set.
func screenshot(t *testing.T, b context.Context, dir, name string) {
	t.Helper()
	if dir == "" {
		return
	}
	png, err := chromedp.Run(b, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}

func post(t *testing.T, url string, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitStatus polls /api/v1/status until cond holds.
func waitStatus(ctx context.Context, t *testing.T, url string, cond func(status.Status) bool) status.Status {
	t.Helper()
	for {
		var st status.Status
		if err := json.Unmarshal([]byte(get(t, url+"/api/v1/status")), &st); err != nil {
			t.Fatal(err)
		}
		if cond(st) {
			return st
		}
		select {
		case <-ctx.Done():
			t.Fatalf("status never got there: %+v", st)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestPlaygroundOutOfMemory: a mapping whose template grows without end
// runs the playground's child process out of memory. The answer says so in
// a line, with no Go stack dump, which goes to the debug log; the next
// translation works.
func TestPlaygroundOutOfMemory(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := startStack(ctx, t, stackOptions{})
	event := json.RawMessage(`{"rule":"R","priority":"Critical","time":"2026-01-02T10:00:00Z","output":"o"}`)
	// Doubles a string 40 times: far past the child's memory limit,
	// within its time limit.
	doubling := `labels:` + "\n" + `  alertname: '{{ $x := "xxxxxxxx" }}{{ range 40 }}{{ $x = printf "%s%s" $x $x }}{{ end }}{{ len $x }}'` + "\n"
	req, _ := json.Marshal(map[string]any{"event": event, "mapping": doubling})
	code, body := post(t, s.bridge.URL+"/api/v1/translate", req)
	if code != http.StatusBadRequest || !strings.Contains(body, "the mapping ran out of memory on this event") {
		t.Fatalf("translation out of memory: %d %s", code, body)
	}
	if strings.Contains(body, "goroutine") || strings.Contains(body, "runtime.") || len(body) > 200 {
		t.Errorf("the answer carries the child's stack dump (%d bytes):\n%s", len(body), body)
	}
	waitUntil(ctx, t, "the child's details in the debug log", func() bool {
		out := s.bridge.Output()
		return strings.Contains(out, "playground translation failed") && strings.Contains(out, "goroutine")
	})
	req, _ = json.Marshal(map[string]any{"event": event})
	if code, body := post(t, s.bridge.URL+"/api/v1/translate", req); code != http.StatusOK {
		t.Fatalf("translation after one out of memory: %d %s", code, body)
	}
}
