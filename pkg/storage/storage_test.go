package storage

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/alertmanager"
)

func logger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Replayed is an alert read back from disk, with the segment it holds.
type Replayed struct {
	Alert *alertmanager.Alert
	Ack   *Segment
}

func open(t *testing.T, dir string, opts Options) (*Store, []Replayed) {
	t.Helper()
	return openWith(t, dir, opts, prometheus.NewRegistry())
}

func openWith(t *testing.T, dir string, opts Options, reg prometheus.Registerer) (*Store, []Replayed) {
	t.Helper()
	s, err := Open(dir, opts, logger(), reg)
	if err != nil {
		t.Fatal(err)
	}
	var replayed []Replayed
	if _, err := s.Replay(func(a *alertmanager.Alert, seg *Segment) error {
		replayed = append(replayed, Replayed{a, seg})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return s, replayed
}

func testAlert(i int) *alertmanager.Alert {
	start := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	return &alertmanager.Alert{
		Labels:       model.LabelSet{"alertname": "Test", "n": model.LabelValue(fmt.Sprint(i))},
		Annotations:  model.LabelSet{"command": model.LabelValue(fmt.Sprintf("sh -c 'echo %d ✓'", i))},
		StartsAt:     start,
		EndsAt:       start.Add(10 * time.Minute),
		GeneratorURL: "https://falco.example.com/e/1",
	}
}

// appendAll writes alerts one request at a time and returns the segments
// holding them, held once per alert as a queue would.
func appendAll(t *testing.T, s *Store, alerts []*alertmanager.Alert) []*Segment {
	t.Helper()
	var segs []*Segment
	for _, a := range alerts {
		seg, failed, err := s.Append([]*alertmanager.Alert{a})
		if err != nil || failed != nil {
			t.Fatal(err, failed)
		}
		seg.Add(1) // the one queue that takes it
		seg.Done() // Append's own hold
		segs = append(segs, seg)
	}
	return segs
}

func segmentFiles(t *testing.T, dir string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

func TestReplayAfterRestart(t *testing.T) {
	dir := t.TempDir()
	s, replayed := open(t, dir, Options{FsyncInterval: time.Hour})
	if len(replayed) != 0 {
		t.Fatalf("new store replayed %d", len(replayed))
	}
	var alerts []*alertmanager.Alert
	for i := range 50 {
		alerts = append(alerts, testAlert(i))
	}
	appendAll(t, s, alerts)
	// Nothing was acknowledged: no queue delivered anything.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2, replayed := open(t, dir, Options{FsyncInterval: time.Hour})
	defer s2.Close()
	if len(replayed) != len(alerts) {
		t.Fatalf("replayed %d alerts, want %d", len(replayed), len(alerts))
	}
	for i, r := range replayed {
		want := alerts[i]
		if !r.Alert.Labels.Equal(want.Labels) || !r.Alert.Annotations.Equal(want.Annotations) ||
			!r.Alert.StartsAt.Equal(want.StartsAt) || !r.Alert.EndsAt.Equal(want.EndsAt) || r.Alert.GeneratorURL != want.GeneratorURL {
			t.Fatalf("alert %d came back as %+v, want %+v", i, r.Alert, want)
		}
	}
}

func TestDoneSegmentsAreTrimmed(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, Options{FsyncInterval: time.Hour, SegmentBytes: 2048})
	var alerts []*alertmanager.Alert
	for i := range 100 {
		alerts = append(alerts, testAlert(i))
	}
	segs := appendAll(t, s, alerts)
	if n := segmentFiles(t, dir); n < 5 {
		t.Fatalf("%d segment files; 100 alerts in 2 KiB segments should make more", n)
	}
	// Deliver the first 60: their sealed segments go, except one that
	// also holds undelivered alerts.
	for _, seg := range segs[:60] {
		seg.Done()
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, replayed := open(t, dir, Options{FsyncInterval: time.Hour})
	defer s2.Close()
	if len(replayed) < 40 || len(replayed) > 60 {
		t.Fatalf("replayed %d alerts; want the 40 undelivered plus at most a segment's worth of delivered neighbours", len(replayed))
	}
	last := replayed[len(replayed)-1].Alert.Labels["n"]
	if last != "99" {
		t.Fatalf("the newest alert is missing: last replayed n=%s", last)
	}
	seen := map[model.LabelValue]bool{}
	for _, r := range replayed {
		seen[r.Alert.Labels["n"]] = true
	}
	for i := 60; i < 100; i++ {
		if !seen[model.LabelValue(fmt.Sprint(i))] {
			t.Fatalf("undelivered alert %d was not replayed", i)
		}
	}
}

func TestReplayedSegmentsGoWhenDone(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, Options{FsyncInterval: time.Hour})
	appendAll(t, s, []*alertmanager.Alert{testAlert(1), testAlert(2)})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, replayed := open(t, dir, Options{FsyncInterval: time.Hour})
	defer s2.Close()
	for _, r := range replayed {
		r.Ack.Add(1)
	}
	s2.ReplayDone()
	if n := segmentFiles(t, dir); n != 2 {
		t.Fatalf("%d segment files, want the replayed one and the new active one", n)
	}
	for _, r := range replayed {
		r.Ack.Done()
	}
	if n := segmentFiles(t, dir); n != 1 {
		t.Fatalf("%d segment files after every replayed alert was delivered, want only the active one", n)
	}
}

func TestTornRecordEndsReplay(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, Options{FsyncInterval: time.Hour})
	appendAll(t, s, []*alertmanager.Alert{testAlert(1), testAlert(2), testAlert(3)})
	path := s.active.path
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A crash in the middle of the last write.
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, fi.Size()-5); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s2, replayed := openWith(t, dir, Options{FsyncInterval: time.Hour}, reg)
	defer s2.Close()
	if len(replayed) != 2 || replayed[1].Alert.Labels["n"] != "2" {
		t.Fatalf("replayed %d alerts", len(replayed))
	}
	if got := testutil.ToFloat64(s2.metrics.corrupt); got != 1 {
		t.Fatalf("torn_segments_total = %v", got)
	}

	// A flipped byte is caught by the checksum.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[headerSize+3] ^= 0xff
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	s2.Close()
	s3, replayed := open(t, dir, Options{FsyncInterval: time.Hour})
	defer s3.Close()
	if len(replayed) != 0 {
		t.Fatalf("replayed %d alerts from a segment whose first record is corrupt", len(replayed))
	}
}

func TestSyncEveryAppend(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	s, _ := openWith(t, dir, Options{FsyncInterval: 0}, reg)
	appendAll(t, s, []*alertmanager.Alert{testAlert(1), testAlert(2)})
	if n := testutil.CollectAndCount(s.metrics.fsync); n != 1 {
		t.Fatalf("fsync histogram has %d series", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, replayed := open(t, dir, Options{})
	if len(replayed) != 2 {
		t.Fatalf("replayed %d", len(replayed))
	}
}

func TestIdleActiveSegmentIsRotatedAway(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir, Options{FsyncInterval: 20 * time.Millisecond})
	defer s.Close()
	segs := appendAll(t, s, []*alertmanager.Alert{testAlert(1)})
	segs[0].Done()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(segs[0].path); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a fully delivered active segment was never removed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
