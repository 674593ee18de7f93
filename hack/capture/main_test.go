package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunPrintsAddressAndWritesOut(t *testing.T) {
	outPath := filepath.Join(t.TempDir(), "captures.jsonl")
	ctx, cancel := context.WithCancel(context.Background())
	stdoutR, stdoutW := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"--listen-address", "127.0.0.1:0", "--out", outPath}, stdoutW, io.Discard)
		stdoutW.Close()
	}()

	addr, err := bufio.NewReader(stdoutR).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the address line: %v", err)
	}
	addr = strings.TrimSpace(addr)
	if !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
		t.Fatalf("first line = %q, want the chosen 127.0.0.1 address", addr)
	}

	resp, err := http.Post("http://"+addr+"/slack/T0", "application/json", strings.NewReader(`{"text":"hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("run: %v", err)
	}
	data, err := os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Kind string          `json:"kind"`
		Body json.RawMessage `json:"body"`
	}
	if err := json.Unmarshal(data, &rec); err != nil || rec.Kind != "slack" || string(rec.Body) != `{"text":"hi"}` {
		t.Errorf("--out holds %q (err %v)", data, err)
	}
}

func TestRunRejectsBadArguments(t *testing.T) {
	for _, args := range [][]string{{"--nope"}, {"extra"}, {"--listen-address", "256.0.0.1:0"}} {
		if err := run(context.Background(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("run(%q) succeeded, want an error", args)
		}
	}
}
