// Package capture stands in for Slack and PagerDuty so tests and demos can
// see the notifications Alertmanager sends.
//
// Any path under /slack/ answers 200 with the body "ok" (what Slack's incoming
// webhooks answer and Alertmanager expects); any path under /pagerduty/
// answers 202 like the PagerDuty Events API. Every request is recorded, except
// those to /captures, which serves the records (GET, optionally ?kind=slack or
// ?kind=pagerduty) and clears them (DELETE). Requests to other paths are
// recorded with kind "other" and answered 404, so a misrouted notification
// still shows up.
package capture

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Kinds of record, by path prefix.
const (
	KindSlack     = "slack"
	KindPagerDuty = "pagerduty"
	KindOther     = "other"
)

// maxBody bounds a recorded request body; PagerDuty itself refuses events
// over 512 KB.
const maxBody = 4 << 20

// Record is one received request.
type Record struct {
	Time    time.Time         `json:"time"`
	Kind    string            `json:"kind"`
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers"`
	// Body is the request body when it is JSON, RawBody otherwise.
	Body    json.RawMessage `json:"body,omitempty"`
	RawBody string          `json:"raw_body,omitempty"`
}

// Server records requests. Its zero value is not usable; call New.
type Server struct {
	mux *http.ServeMux

	mu      sync.Mutex
	records []Record
	out     io.Writer     // JSON lines, may be nil
	changed chan struct{} // closed and replaced on every change

	srv *http.Server
	ln  net.Listener
}

// New returns a Server. When out is not nil, every record is also written to
// it as one JSON line.
func New(out io.Writer) *Server {
	s := &Server{out: out, changed: make(chan struct{})}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /captures", s.handleList)
	s.mux.HandleFunc("DELETE /captures", s.handleClear)
	s.mux.HandleFunc("/captures", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", "GET, HEAD, DELETE")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	})
	s.mux.HandleFunc("/slack/", s.handleSlack)
	s.mux.HandleFunc("/pagerduty/", s.handlePagerDuty)
	s.mux.HandleFunc("/", s.handleOther)
	return s
}

// ServeHTTP makes Server an http.Handler, for httptest or another server.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// Start serves on addr (host:port; port 0 picks a free one) until Close.
func (s *Server) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %q: %w", addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
	}
	go func() { _ = s.srv.Serve(ln) }()
	return nil
}

// Addr is the address Start listens on, such as "127.0.0.1:40123".
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// URL is the base URL Start serves, such as "http://127.0.0.1:40123".
func (s *Server) URL() string {
	return "http://" + s.Addr()
}

// Close stops what Start started, waiting up to 5 s for open requests.
func (s *Server) Close() error {
	if s.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

// Records returns a copy of the records of the given kind, oldest first;
// all records when kind is empty.
func (s *Server) Records(kind string) []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []Record{}
	for _, rec := range s.records {
		if kind == "" || rec.Kind == kind {
			out = append(out, rec)
		}
	}
	return out
}

// Reset drops all records.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = nil
	s.notifyLocked()
}

// Wait blocks until done returns true for the records of the given kind (all
// when empty), and returns those records; or until ctx ends.
func (s *Server) Wait(ctx context.Context, kind string, done func([]Record) bool) ([]Record, error) {
	for {
		s.mu.Lock()
		changed := s.changed
		s.mu.Unlock()
		recs := s.Records(kind)
		if done(recs) {
			return recs, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return recs, fmt.Errorf("waiting for %s captures: %w", kindName(kind), context.Cause(ctx))
		}
	}
}

func kindName(kind string) string {
	if kind == "" {
		return "any"
	}
	return kind
}

func (s *Server) handleSlack(w http.ResponseWriter, r *http.Request) {
	if s.record(w, r, KindSlack) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok")
	}
}

func (s *Server) handlePagerDuty(w http.ResponseWriter, r *http.Request) {
	if s.record(w, r, KindPagerDuty) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"status":"success","message":"Event processed"}`)
	}
}

func (s *Server) handleOther(w http.ResponseWriter, r *http.Request) {
	if s.record(w, r, KindOther) {
		http.NotFound(w, r)
	}
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	kind := r.URL.Query().Get("kind")
	switch kind {
	case "", KindSlack, KindPagerDuty, KindOther:
	default:
		http.Error(w, fmt.Sprintf("kind: %q is not one of slack, pagerduty, other", kind), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(s.Records(kind))
}

func (s *Server) handleClear(w http.ResponseWriter, _ *http.Request) {
	s.Reset()
	w.WriteHeader(http.StatusNoContent)
}

// record stores the request and reports whether the caller should answer;
// it has answered itself when the body could not be read.
func (s *Server) record(w http.ResponseWriter, r *http.Request, kind string) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		status := http.StatusBadRequest
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			status = http.StatusRequestEntityTooLarge
		}
		http.Error(w, fmt.Sprintf("reading body: %v", err), status)
		return false
	}
	rec := Record{
		Time:    time.Now().UTC(),
		Kind:    kind,
		Method:  r.Method,
		Path:    r.URL.Path,
		Headers: map[string]string{"Host": r.Host},
	}
	for name, values := range r.Header {
		rec.Headers[name] = strings.Join(values, ", ")
	}
	if trimmed := bytes.TrimSpace(body); json.Valid(trimmed) {
		rec.Body = json.RawMessage(trimmed)
	} else {
		rec.RawBody = string(body)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = append(s.records, rec)
	if s.out != nil {
		line, err := json.Marshal(rec)
		if err == nil {
			_, _ = s.out.Write(append(line, '\n'))
		}
	}
	s.notifyLocked()
	return true
}

func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}
