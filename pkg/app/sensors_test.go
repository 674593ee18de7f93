package app

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/api/v2/models"
)

// A sensor is tracked from its events even when the mapping drops them
// (Falco's metrics snapshots), and a sensor gone quiet raises
// FalcoSensorSilent, which speaking again resolves.
func TestSilentSensor(t *testing.T) {
	am := newFakeAM(t)
	mappingFile := filepath.Join(t.TempDir(), "mapping.yaml")
	if err := os.WriteFile(mappingFile, []byte(`
static_labels: {cluster: prod}
labels:
  alertname: '{{ camelCase .Rule }}'
  hostname: '{{ .Hostname }}'
overrides:
  - match: {rule: ["Falco internal: metrics snapshot"]}
    drop: true
`), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startApp(t, "--alertmanager.url="+am.URL, "--mapping.file="+mappingFile, "--sensors.silent-after=1s")
	snapshot := `{"output":"Falco metrics snapshot","priority":"Informational","rule":"Falco internal: metrics snapshot",` +
		`"time":"2026-01-02T12:00:00Z","source":"internal","hostname":"quiet-1","output_fields":{"falco.version":"0.41.0"}}`
	if r := post(t, a, http.MethodPost, "application/json", "", []byte(snapshot)); r.code != http.StatusAccepted || !strings.Contains(r.body, `"dropped":1`) {
		t.Fatalf("got %d %s, want 202 with the event dropped", r.code, r.body)
	}

	metrics := scrape(t, a)
	if !strings.Contains(metrics, `falco_am_bridge_sensor_last_event_timestamp_seconds{hostname="quiet-1"} `) ||
		!strings.Contains(metrics, "falco_am_bridge_sensors_tracked 1\n") {
		t.Fatalf("/metrics lacks the sensor:\n%s", grepLines(metrics, "sensor"))
	}

	silent := func() []*models.PostableAlert {
		var out []*models.PostableAlert
		for _, al := range am.alerts() {
			if al.Labels["alertname"] == "FalcoSensorSilent" {
				out = append(out, al)
			}
		}
		return out
	}
	waitFor(t, "FalcoSensorSilent", func() bool { return len(silent()) > 0 })
	firing := silent()[0]
	if firing.Labels["hostname"] != "quiet-1" || firing.Labels["severity"] != "warning" || firing.Labels["cluster"] != "prod" {
		t.Errorf("labels %v", firing.Labels)
	}
	if !strings.HasPrefix(firing.Annotations["summary"], "Falco on quiet-1 has sent no event for ") {
		t.Errorf("summary %q", firing.Annotations["summary"])
	}

	// The sensor speaks again, and keeps speaking (else it could be silent
	// again, and its alert firing anew, before the resolve is sent).
	// Times go to Alertmanager in milliseconds, as its own client sends
	// them: a resolve within the same millisecond must still count.
	sentAgain := time.Now().Truncate(time.Millisecond)
	post(t, a, http.MethodPost, "application/json", "", []byte(snapshot))
	speaking := time.NewTicker(200 * time.Millisecond)
	defer speaking.Stop()
	waitFor(t, "the resolving FalcoSensorSilent", func() bool {
		select {
		case <-speaking.C:
			post(t, a, http.MethodPost, "application/json", "", []byte(snapshot))
		default:
		}
		// The sensor may go quiet again soon after: look at every alert.
		for _, al := range silent()[1:] {
			if end := time.Time(al.EndsAt); end.Before(time.Time(firing.EndsAt)) && !end.Before(sentAgain) {
				return true
			}
		}
		return false
	})
}

func scrape(t *testing.T, a *App) string {
	t.Helper()
	resp, err := http.Get("http://" + a.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
