package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// ceilingEnv, when set to an address, makes this program the ceiling
// server instead of the load tool. The tool starts itself that way, so the
// ceiling is a process of its own, measured like the bridge.
const ceilingEnv = "FALCO_AM_BRIDGE_BENCH_CEILING"

// ceilingEvent is a Falco event as the least a receiver must decode.
type ceilingEvent struct {
	Output       string         `json:"output"`
	Priority     string         `json:"priority"`
	Rule         string         `json:"rule"`
	Time         string         `json:"time"`
	Source       string         `json:"source"`
	Hostname     string         `json:"hostname"`
	Tags         []string       `json:"tags"`
	OutputFields map[string]any `json:"output_fields"`
}

// serveCeiling is the ceiling: an HTTP server that reads each body,
// decodes its events with encoding/json and answers 202. Nothing a receiver
// of Falco events does can be cheaper, so it bounds what the bridge can
// reach on the same machine under the same load.
func serveCeiling(addr string) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /-/ready", func(http.ResponseWriter, *http.Request) {})
	mux.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		n, err := decodeCeiling(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, `{"accepted":%d}`, n)
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return srv.ListenAndServe()
}

func decodeCeiling(r *http.Request) (int, error) {
	var in io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return 0, err
		}
		in = zr
	}
	body, err := io.ReadAll(in)
	if err != nil {
		return 0, err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) > 0 && t[0] == '[' {
		var events []ceilingEvent
		err := dec.Decode(&events)
		return len(events), err
	}
	n := 0
	for {
		var ev ceilingEvent
		if err := dec.Decode(&ev); errors.Is(err, io.EOF) {
			return n, nil
		} else if err != nil {
			return n, err
		}
		n++
	}
}
