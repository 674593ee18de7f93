package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// clock is the time base shared by the load and the fake Alertmanager: the
// load stamps each event when it sends it, the Alertmanager reads the stamp
// back through the event's token.
type clock struct {
	epoch  time.Time
	sentAt []atomic.Int64 // per sequence number, ns since epoch; 0 = not sent
}

func newClock(events int) *clock {
	return &clock{epoch: time.Now(), sentAt: make([]atomic.Int64, events)}
}

func (c *clock) now() int64 { return int64(time.Since(c.epoch)) + 1 }

// fakeAM is an Alertmanager that takes every batch: it finds each alert's
// event by its token and keeps the end-to-end latency of the first
// delivery of each event. It reads the tokens without decoding (see scan)
// and decodes one request in verifyEvery in full to check that reading.
type fakeAM struct {
	clock *clock
	delay time.Duration // before answering, as a loaded Alertmanager would
	// verifyEvery: every how many requests one is decoded in full.
	verifyEvery int
	srv         *http.Server
	URL         string

	mu          sync.Mutex
	seen        []bool // per sequence number
	latencies   []time.Duration
	requests    int
	alerts      int // alerts received, duplicates included
	delivered   int // distinct events that arrived as an alert
	represented int // events the alerts stand for, merged ones (and duplicates) included
	duplicates  int
	foreign     int // alerts without a token of this run
	bad         int // requests that were not a JSON array of alerts
	firstBad    string
	last        time.Time
}

type amAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func startFakeAM(c *clock, delay time.Duration, verifyEvery int) (*fakeAM, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	am := &fakeAM{clock: c, delay: delay, verifyEvery: max(verifyEvery, 1), seen: make([]bool, len(c.sentAt)), URL: "http://" + ln.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v2/alerts", am.receive)
	am.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = am.srv.Serve(ln) }()
	return am, nil
}

func (am *fakeAM) Close() error { return am.srv.Close() }

func (am *fakeAM) receive(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(r.Body)
	at := am.clock.now()
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		err = errContentType
	}
	am.mu.Lock()
	check := am.requests%am.verifyEvery == 0
	am.requests++
	am.last = time.Now()
	am.mu.Unlock()
	var seqs []int
	var merged int
	if err == nil {
		seqs, merged = scan(data)
		if check {
			err = verify(data, seqs, merged)
		}
	}

	am.mu.Lock()
	if err != nil {
		am.bad++
		if am.firstBad == "" {
			am.firstBad = err.Error()
		}
		am.mu.Unlock()
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	am.alerts += len(seqs)
	am.represented += merged
	for _, seq := range seqs {
		if seq < 0 || seq >= len(am.seen) {
			am.foreign++
			continue
		}
		if am.seen[seq] {
			am.duplicates++
			continue
		}
		am.seen[seq] = true
		am.delivered++
		if sent := am.clock.sentAt[seq].Load(); sent > 0 {
			am.latencies = append(am.latencies, time.Duration(at-sent))
		}
	}
	am.mu.Unlock()
	if am.delay > 0 {
		time.Sleep(am.delay)
	}
	w.WriteHeader(http.StatusOK)
}

// scan finds the events of a batch by their tokens, and how many events
// the batch stands for: an alert into which a queue merged several events
// says how many in its merged_events annotation. It reads the bytes
// without decoding them, which would cost the fake Alertmanager more CPU
// than the bridge spends on an event; verify checks it against a decoder.
func scan(data []byte) (seqs []int, events int) {
	for rest := data; ; {
		i := bytes.Index(rest, []byte(tokenPrefix))
		if i < 0 {
			break
		}
		rest = rest[i+len(tokenPrefix):]
		n, digits := leadingInt(rest)
		if digits == 0 {
			n = -1 // a token without a number: counted as foreign
		}
		seqs = append(seqs, n)
		rest = rest[digits:]
	}
	events = len(seqs)
	const key = mergedAnnotation + `":`
	for rest := data; ; {
		i := bytes.Index(rest, []byte(key))
		if i < 0 {
			break
		}
		rest = bytes.TrimLeft(rest[i+len(key):], " \t\r\n")
		rest = bytes.TrimPrefix(rest, []byte(`"`))
		if n, digits := leadingInt(rest); digits > 0 && n > 1 {
			events += n - 1
		}
	}
	return seqs, events
}

func leadingInt(b []byte) (n, digits int) {
	for digits < len(b) && digits < 12 && '0' <= b[digits] && b[digits] <= '9' {
		n = n*10 + int(b[digits]-'0')
		digits++
	}
	return n, digits
}

// mergedAnnotation says how many events a merged alert stands for.
const mergedAnnotation = "merged_events"

// verify decodes a batch as Alertmanager would and checks that scan read
// it right: a JSON array of alerts with labels, each with the token at the
// start of its description.
func verify(data []byte, seqs []int, events int) error {
	var alerts []amAlert
	if err := json.Unmarshal(data, &alerts); err != nil {
		return fmt.Errorf("not a JSON array of alerts: %w", err)
	}
	want := 0
	for i, a := range alerts {
		if len(a.Labels) == 0 {
			return fmt.Errorf("alert %d has no labels", i)
		}
		seq, ok := parseToken(a.Annotations["description"])
		if !ok {
			return fmt.Errorf("alert %d: no token at the start of its description %q", i, a.Annotations["description"])
		}
		if i >= len(seqs) || seqs[i] != seq {
			return fmt.Errorf("alert %d: token %d, the scan read %v", i, seq, seqs)
		}
		merged, err := strconv.Atoi(a.Annotations[mergedAnnotation])
		if err != nil || merged < 1 {
			merged = 1
		}
		want += merged
	}
	if len(alerts) != len(seqs) || want != events {
		return fmt.Errorf("%d alerts for %d events decoded, the scan read %d alerts for %d events", len(alerts), want, len(seqs), events)
	}
	return nil
}

var errContentType = errors.New("Content-Type must be application/json")

// amStats is what the fake Alertmanager saw.
type amStats struct {
	Requests, Alerts, Delivered, Represented, Duplicates, Foreign, Bad int
	FirstBad                                                           string
	Last                                                               time.Time
	P50, P99                                                           time.Duration
	Latencies                                                          int // events with a latency
}

func (am *fakeAM) stats(percentiles bool) amStats {
	am.mu.Lock()
	s := amStats{
		Requests: am.requests, Alerts: am.alerts, Delivered: am.delivered, Represented: am.represented,
		Duplicates: am.duplicates, Foreign: am.foreign, Bad: am.bad, FirstBad: am.firstBad, Last: am.last, Latencies: len(am.latencies),
	}
	var lat []time.Duration
	if percentiles {
		lat = slices.Clone(am.latencies)
	}
	am.mu.Unlock()
	if percentiles {
		slices.Sort(lat)
		s.P50, s.P99 = percentile(lat, 0.50), percentile(lat, 0.99)
	}
	return s
}

// percentile is the nearest-rank percentile of sorted values; 0 for none.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}
