package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// pyYAML prints the documents of its standard input, as PyYAML's
// safe_load_all reads them (YAML 1.1), as a JSON list of tagged nodes:
// ["null"], ["bool", b], ["int", "n"], ["float", "f"], ["str", s],
// ["time", "UTC RFC 3339"], ["seq", [nodes]], ["map", [[key, value]...]].
const pyYAML = `
import datetime, json, sys, yaml

def node(v):
    if v is None:
        return ["null"]
    if isinstance(v, bool):
        return ["bool", v]
    if isinstance(v, int):
        return ["int", str(v)]
    if isinstance(v, float):
        return ["float", repr(v)]
    if isinstance(v, str):
        return ["str", v]
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=datetime.timezone.utc)
        return ["time", v.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")]
    if isinstance(v, datetime.date):
        return ["time", v.strftime("%Y-%m-%dT00:00:00.000000Z")]
    if isinstance(v, list):
        return ["seq", [node(e) for e in v]]
    if isinstance(v, dict):
        return ["map", [[node(k), node(e)] for k, e in v.items()]]
    return ["other", type(v).__name__ + ": " + repr(v)]

print(json.dumps([node(d) for d in yaml.safe_load_all(sys.stdin.buffer)]))
`

// YAMLDifferences reads data, one or more YAML documents, with PyYAML's
// safe_load_all through python (a Python 3 with PyYAML) and with yaml.v3,
// and returns where the two disagree, one line each with the document and
// path. PyYAML reads YAML 1.1, as yaml.v2 and so Kubernetes, Helm and
// Alertmanager do: there `on`, `no` and `off` are booleans, `=` is an error
// and `1e3` a string. An unquoted scalar that is read differently is a value
// that depends on the reader.
func YAMLDifferences(ctx context.Context, python string, data []byte) ([]string, error) {
	cmd := exec.CommandContext(ctx, python, "-c", pyYAML)
	cmd.Stdin = bytes.NewReader(data)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if i := strings.LastIndex(msg, "\nyaml."); i >= 0 {
			// The traceback's last lines: the error and where.
			msg = msg[i+1:]
		}
		if msg == "" {
			return nil, fmt.Errorf("%s: %w", python, err)
		}
		if strings.Contains(msg, "No module named 'yaml'") {
			return nil, fmt.Errorf("%s has no PyYAML (apt-get install python3-yaml)", python)
		}
		if !strings.HasPrefix(msg, "yaml.") {
			return nil, fmt.Errorf("%s: %s", python, msg)
		}
		return []string{"PyYAML cannot read it: " + strings.Join(strings.Fields(msg), " ")}, nil
	}
	var py []any
	if err := json.Unmarshal(stdout.Bytes(), &py); err != nil {
		return nil, fmt.Errorf("reading what PyYAML read: %w", err)
	}

	var v3 []any
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return []string{"yaml.v3 cannot read it: " + err.Error()}, nil //nolint:nilerr // a finding, not a failure to check
		}
		v3 = append(v3, doc)
	}

	if len(py) != len(v3) {
		return []string{fmt.Sprintf("PyYAML reads %d documents, yaml.v3 %d", len(py), len(v3))}, nil
	}
	var diffs []string
	for i := range py {
		prefix := ""
		if len(py) > 1 {
			prefix = fmt.Sprintf("document %d: ", i+1)
		}
		compareYAML(&diffs, prefix, py[i], v3[i])
	}
	return diffs, nil
}

// compareYAML appends to diffs where the PyYAML node py and the yaml.v3
// value v differ, below path.
func compareYAML(diffs *[]string, path string, py, v any) {
	p, _ := py.([]any)
	if len(p) == 0 {
		*diffs = append(*diffs, fmt.Sprintf("%s: unreadable PyYAML node %v", path, py))
		return
	}
	tag, _ := p[0].(string)
	differ := func() {
		at := path
		if at == "" || strings.HasSuffix(at, ": ") {
			at += "(top)"
		}
		*diffs = append(*diffs, fmt.Sprintf("%s: PyYAML (YAML 1.1) reads %s, yaml.v3 reads %s", at, describePy(p), describeV3(v)))
	}
	switch tag {
	case "map":
		pairs, _ := p[1].([]any)
		m := map[string]any{}
		switch vm := v.(type) {
		case map[string]any:
			for k, e := range vm {
				m[yamlKey(k)] = e
			}
		case map[any]any:
			for k, e := range vm {
				m[yamlKey(k)] = e
			}
		default:
			differ()
			return
		}
		seen := map[string]bool{}
		for _, pair := range pairs {
			kv, _ := pair.([]any)
			key := describePyKey(kv[0])
			seen[key] = true
			e, ok := m[key]
			if !ok {
				*diffs = append(*diffs, fmt.Sprintf("%s: PyYAML (YAML 1.1) reads the key as %s, yaml.v3 does not", path+"."+key, describePy(kv[0].([]any))))
				continue
			}
			compareYAML(diffs, path+"."+key, kv[1], e)
		}
		var extra []string
		for k := range m {
			if !seen[k] {
				extra = append(extra, k)
			}
		}
		slices.Sort(extra)
		for _, k := range extra {
			*diffs = append(*diffs, fmt.Sprintf("%s: yaml.v3 reads this key, PyYAML (YAML 1.1) does not", path+"."+k))
		}
	case "seq":
		elems, _ := p[1].([]any)
		vs, ok := v.([]any)
		if !ok || len(vs) != len(elems) {
			differ()
			return
		}
		for i := range elems {
			compareYAML(diffs, fmt.Sprintf("%s[%d]", path, i), elems[i], vs[i])
		}
	default:
		if !sameScalar(p, v) {
			differ()
		}
	}
}

// sameScalar says whether the PyYAML scalar p is the yaml.v3 value v.
func sameScalar(p []any, v any) bool {
	tag, _ := p[0].(string)
	var val string
	if len(p) > 1 {
		val, _ = p[1].(string)
	}
	switch tag {
	case "null":
		return v == nil
	case "bool":
		b, ok := v.(bool)
		return ok && b == p[1]
	case "str":
		s, ok := v.(string)
		return ok && s == val
	case "int":
		switch n := v.(type) {
		case int:
			return strconv.Itoa(n) == val
		case int64:
			return strconv.FormatInt(n, 10) == val
		case uint64:
			return strconv.FormatUint(n, 10) == val
		}
		return false
	case "float":
		f, ok := v.(float64)
		want, err := strconv.ParseFloat(strings.Replace(val, "inf", "Inf", 1), 64)
		return ok && err == nil && (f == want || math.IsNaN(f) && math.IsNaN(want))
	case "time":
		t, ok := v.(time.Time)
		return ok && t.UTC().Format("2006-01-02T15:04:05.000000Z") == val
	}
	return false
}

// yamlKey is how a yaml.v3 map key shows in a path; describePyKey the
// same for a PyYAML key, so that equal keys meet.
func yamlKey(k any) string {
	switch k := k.(type) {
	case string:
		return k
	case nil:
		return "null"
	default:
		return fmt.Sprintf("(%T %v)", k, k)
	}
}

func describePyKey(k any) string {
	p, _ := k.([]any)
	if len(p) < 2 {
		return "null"
	}
	tag, _ := p[0].(string)
	switch tag {
	case "str":
		return p[1].(string)
	case "bool":
		return fmt.Sprintf("(bool %v)", p[1])
	case "int":
		return fmt.Sprintf("(int %v)", p[1])
	case "float":
		return fmt.Sprintf("(float64 %v)", p[1])
	}
	return fmt.Sprintf("(%s %v)", tag, p[1])
}

func describePy(p []any) string {
	switch p[0] {
	case "null":
		return "null"
	case "map", "seq":
		return fmt.Sprintf("a %s", map[string]string{"map": "mapping", "seq": "sequence"}[p[0].(string)])
	case "str":
		return fmt.Sprintf("the string %q", p[1])
	}
	return fmt.Sprintf("%s %v", p[0], p[1])
}

func describeV3(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case map[string]any, map[any]any:
		return "a mapping"
	case []any:
		return fmt.Sprintf("a sequence of %d", len(v))
	case string:
		return fmt.Sprintf("the string %q", v)
	case time.Time:
		return "time " + v.Format(time.RFC3339Nano)
	case float64:
		return fmt.Sprintf("float %v", v)
	case int, int64, uint64:
		return fmt.Sprintf("int %v", v)
	}
	return fmt.Sprintf("%T %v", v, v)
}
