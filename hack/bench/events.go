package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The token that carries an event's sequence number through the bridge: it
// starts the event's output, which the shipped mapping turns into the
// description annotation (cut at the end when too long, so the start stays).
const tokenPrefix = "bench-seq="

// Placeholders in a template, replaced per event. They are plain ASCII that
// needs no JSON escaping and that no real event holds.
const (
	seqMark  = "@@BENCH_SEQ@@"
	idMark   = "@@BENCH_ID@@"
	timeMark = "@@BENCH_TIME@@"
	padMark  = "@@BENCH_PAD@@" // after the token, where an event is padded to a size
)

// Where the events come from, relative to the repository root: the shared
// corpus of real Falco alerts, or the mapping fixtures when it is missing.
const (
	sharedEvents  = "../shared/falco-events/real-events.jsonl"
	fixtureEvents = "pkg/mapping/testdata/events/*.json"
)

// template is one Falco event split at its placeholders, so that a copy with
// another sequence number, identity and time is a few appends.
type template struct {
	parts []string // literal text and marks, in order
}

// loadTemplates reads events from path (JSON lines, or a glob of JSON
// files), or when path is empty from the shared corpus or the fixtures of
// the repository that holds dir.
func loadTemplates(path, dir string) ([]template, string, error) {
	if path == "" {
		root, err := repoRoot(dir)
		if err != nil {
			return nil, "", err
		}
		path = filepath.Join(root, sharedEvents)
		if _, err := os.Stat(path); err != nil {
			path = filepath.Join(root, fixtureEvents)
		}
	}
	raws, err := readEvents(path)
	if err != nil {
		return nil, "", err
	}
	if len(raws) == 0 {
		return nil, "", fmt.Errorf("%s: no events", path)
	}
	ts := make([]template, 0, len(raws))
	for i, raw := range raws {
		t, err := newTemplate(raw)
		if err != nil {
			return nil, "", fmt.Errorf("%s: event %d: %w", path, i, err)
		}
		ts = append(ts, t)
	}
	return ts, path, nil
}

// readEvents returns the events of a JSON-lines file, or of every file a
// glob matches (one JSON value each).
func readEvents(path string) ([][]byte, error) {
	if strings.ContainsAny(path, "*?[") {
		files, err := filepath.Glob(path)
		if err != nil {
			return nil, err
		}
		slices.Sort(files)
		var out [][]byte
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			out = append(out, b)
		}
		return out, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		if line := bytes.TrimSpace(sc.Bytes()); len(line) > 0 {
			out = append(out, slices.Clone(line))
		}
	}
	return out, sc.Err()
}

// newTemplate makes a template of one event: its output starts with the
// token, its time is the time of sending, and its identity (the pod name
// when it has one, else the hostname) can be made distinct per event.
func newTemplate(raw []byte) (template, error) {
	var ev map[string]json.RawMessage
	if err := json.Unmarshal(raw, &ev); err != nil {
		return template{}, err
	}
	key := func(name string) string { // Falco keys, in any case
		for k := range ev {
			if strings.EqualFold(k, name) {
				return k
			}
		}
		return name
	}
	var output, hostname string
	_ = json.Unmarshal(ev[key("output")], &output)
	_ = json.Unmarshal(ev[key("hostname")], &hostname)
	set := func(k, v string) { ev[k] = marshal(v) }
	set(key("output"), tokenPrefix+seqMark+" "+padMark+output)
	set(key("time"), timeMark)

	identity := false
	if of, ok := ev[key("output_fields")]; ok {
		var fields map[string]json.RawMessage
		if json.Unmarshal(of, &fields) == nil {
			var pod string
			if json.Unmarshal(fields["k8s.pod.name"], &pod) == nil && pod != "" && pod != "<NA>" {
				fields["k8s.pod.name"] = marshal(pod + "-" + idMark)
				ev[key("output_fields")] = marshal(fields)
				identity = true
			}
		}
	}
	if !identity {
		if hostname == "" {
			hostname = "bench"
		}
		set(key("hostname"), hostname+"-"+idMark)
	}
	return template{parts: splitMarks(string(marshal(ev)))}, nil
}

// marshal encodes v as Falco does, without escaping <, > and & (json.Marshal
// would, and escapes take a slower path in decoders than the real bytes).
// v is a string or a map of values that came from JSON, so it cannot fail.
func marshal(v any) json.RawMessage {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// splitMarks cuts s before and after every placeholder.
func splitMarks(s string) []string {
	var parts []string
	for {
		at, mark := -1, ""
		for _, m := range []string{seqMark, idMark, timeMark, padMark} {
			if i := strings.Index(s, m); i >= 0 && (at < 0 || i < at) {
				at, mark = i, m
			}
		}
		if at < 0 {
			return append(parts, s)
		}
		parts = append(parts, s[:at], mark)
		s = s[at+len(mark):]
	}
}

// appendEvent appends the event with sequence number seq. In a storm every
// event keeps the template's identity, so all of them are one alert. pad,
// usually empty, goes into the output after the token.
func (t template) appendEvent(b []byte, seq int, distinct bool, ts, pad string) []byte {
	for _, p := range t.parts {
		switch p {
		case seqMark:
			b = strconv.AppendInt(b, int64(seq), 10)
		case idMark:
			if distinct {
				b = strconv.AppendInt(b, int64(seq), 10)
			} else {
				b = append(b, "storm"...)
			}
		case timeMark:
			b = append(b, ts...)
		case padMark:
			b = append(b, pad...)
		default:
			b = append(b, p...)
		}
	}
	return b
}

// body is one request of a load: its bytes and the sequence numbers of the
// events it holds, first to first+n-1.
type body struct {
	data  []byte
	first int
	n     int
}

// buildBodies makes every request of a scenario before it runs, so that
// generating the load costs nothing while it is measured.
func buildBodies(ts []template, sc scenario, now time.Time) ([]body, error) {
	stamp := now.UTC().Format("2006-01-02T15:04:05.000000000Z")
	batch := max(sc.Batch, 1)
	bodies := make([]body, 0, (sc.Events+batch-1)/batch)
	for first := 0; first < sc.Events; first += batch {
		n := min(batch, sc.Events-first)
		var b []byte
		if sc.Batch > 1 {
			b = append(b, '[')
		}
		for seq := first; seq < first+n; seq++ {
			if seq > first {
				b = append(b, ',')
			}
			t := ts[0]
			if !sc.Storm {
				t = ts[seq%len(ts)]
			}
			b = t.appendEvent(b, seq, !sc.Storm, stamp, "")
		}
		if sc.Batch > 1 {
			b = append(b, ']')
		}
		if sc.Gzip {
			var z bytes.Buffer
			zw := gzip.NewWriter(&z)
			if _, err := zw.Write(b); err != nil {
				return nil, err
			}
			if err := zw.Close(); err != nil {
				return nil, err
			}
			b = z.Bytes()
		}
		bodies = append(bodies, body{data: b, first: first, n: n})
	}
	return bodies, nil
}

// parseToken returns the sequence number at the start of a description.
func parseToken(desc string) (int, bool) {
	rest, ok := strings.CutPrefix(desc, tokenPrefix)
	if !ok {
		return 0, false
	}
	end := strings.IndexByte(rest, ' ')
	if end < 0 {
		end = len(rest)
	}
	n, err := strconv.Atoi(rest[:end])
	return n, err == nil && n >= 0
}

// repoRoot is the directory above dir that holds go.mod.
func repoRoot(dir string) (string, error) {
	for d := dir; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", errors.New("no go.mod above " + dir + ": run from the repository, or pass -events")
		}
		d = parent
	}
}
