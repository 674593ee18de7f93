package app

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/status"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/translate"
)

// pipelineMapping drops events below notice and makes an alert with no
// label, which Alertmanager refuses, of an event with no hostname.
const pipelineMapping = "--mapping.file=testdata/pipeline-mapping.yaml"

// noHost is a valid event whose alert has no label under pipelineMapping.
var noHost = strings.Replace(ev("No host", "Critical"), `,"hostname":"node-1"`, "", 1)

// TestRefusedEventIsRecordedOnce: an event refused by the alert check is in
// the status ring once, as refused, beside its valid neighbour.
func TestRefusedEventIsRecordedOnce(t *testing.T) {
	am := newFakeAM(t)
	a := startApp(t, "--alertmanager.url="+am.URL, pipelineMapping)
	r := post(t, a, http.MethodPost, "application/json", "", []byte("["+ev("Valid", "Critical")+","+noHost+"]"))
	if r.code != http.StatusBadRequest {
		t.Fatalf("answer %d %s", r.code, r.body)
	}
	var outcomes []string
	for _, e := range a.ui.recent.List() {
		outcomes = append(outcomes, e.Rule+"="+e.Outcome)
	}
	// Newest first.
	if want := []string{"No host=" + status.OutcomeRefused, "Valid=" + status.OutcomeAlert}; !slices.Equal(outcomes, want) {
		t.Fatalf("status ring %v, want %v", outcomes, want)
	}
}

// TestTranslateAndServeAgree: every event of both shared corpora (and one
// more without a hostname) is sent to the bridge, one per request, and to
// its translate API. The fate of each (alert with the same labels,
// dropped, invalid, refused) is the same in the ingest answer, the status
// ring and the translation.
func TestTranslateAndServeAgree(t *testing.T) {
	am := newFakeAM(t)
	a := startApp(t, "--alertmanager.url="+am.URL, pipelineMapping)
	var lines []string
	for _, f := range []string{"real-events.jsonl", "fixture-events.jsonl"} {
		lines = append(lines, corpus(t, "../../../shared/falco-events/"+f)...)
	}
	lines = append(lines, noHost)
	fates := map[string]int{}
	for i, line := range lines {
		served := serveFate(t, a, line)
		translated := translateFate(t, a, line)
		if served != translated {
			t.Errorf("event %d: served %q, translated %q\n%s", i, served, translated, line)
		}
		fates[strings.SplitN(served, " ", 2)[0]]++
	}
	// The corpora hold each kind of fate, so that the comparison covers
	// them all.
	for _, f := range []string{status.OutcomeAlert, status.OutcomeDropped, status.OutcomeRejected, status.OutcomeRefused} {
		if fates[f] == 0 {
			t.Errorf("no event was %s: %v", f, fates)
		}
	}
	t.Logf("%d events: %v", len(lines), fates)
}

func corpus(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			out = append(out, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("%s holds no event", path)
	}
	return out
}

// serveFate posts one event and reads its fate from the answer and from
// the newest entry of the status ring, which must agree.
func serveFate(t *testing.T, a *App, line string) string {
	t.Helper()
	r := post(t, a, http.MethodPost, "application/json", "", []byte(line))
	var ans struct {
		Alerts, Dropped, Rejected int
	}
	if err := json.Unmarshal([]byte(r.body), &ans); err != nil {
		t.Fatalf("answer %d %s: %v", r.code, r.body, err)
	}
	recent := a.ui.recent.List()
	if len(recent) == 0 {
		t.Fatal("the status ring is empty")
	}
	e := recent[0]
	var fromAnswer string
	switch {
	case r.code == http.StatusAccepted && ans.Alerts == 1:
		fromAnswer = status.OutcomeAlert
	case r.code == http.StatusAccepted && ans.Dropped == 1:
		fromAnswer = status.OutcomeDropped
	case r.code == http.StatusBadRequest && ans.Rejected == 1:
		fromAnswer = e.Outcome // rejected or refused: the ring tells which
		if e.Outcome != status.OutcomeRejected && e.Outcome != status.OutcomeRefused {
			t.Fatalf("answer 400, but the ring says %s", e.Outcome)
		}
	default:
		t.Fatalf("answer %d %s", r.code, r.body)
	}
	if e.Outcome != fromAnswer {
		t.Fatalf("answer says %s, the ring %s", fromAnswer, e.Outcome)
	}
	if e.Alert != nil {
		return fromAnswer + " " + e.Alert.Labels.String()
	}
	return fromAnswer
}

// translateFate asks the translate API's function, as the playground's
// child process runs it, what the event becomes.
func translateFate(t *testing.T, a *App, line string) string {
	t.Helper()
	req := translate.Request{Event: json.RawMessage(line)}
	ans, err := translate.API(req, a.state.Load().mapping, time.Now())
	if err != nil {
		t.Fatalf("translate: %v", err)
	}
	if len(ans.Alerts) == 1 {
		ls := model.LabelSet{}
		for k, v := range ans.Alerts[0].Labels {
			ls[model.LabelName(k)] = model.LabelValue(v)
		}
		return status.OutcomeAlert + " " + ls.String()
	}
	for _, e := range ans.Errors {
		switch e.Kind {
		case translate.KindInvalid:
			return status.OutcomeRejected
		case translate.KindRefused:
			return status.OutcomeRefused
		case translate.KindDropped:
			return status.OutcomeDropped
		}
	}
	t.Fatalf("translate gave neither an alert nor a reason: %+v", ans)
	return ""
}
