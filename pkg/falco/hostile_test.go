package falco

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

const head = `"rule":"R","priority":"Debug","time":"2023-05-25T13:44:05Z"`

// hostile are bodies shaped to cost as much as possible for their size.
// Each is about 1 MiB (the request limit is 4 MiB), decoded with the
// bridge's default limit of 10,000 events a request.
var hostile = []struct {
	name  string
	body  func() string
	check func(t *testing.T, b *Body)
}{
	{"deep nesting", func() string {
		n := 200_000
		return "{" + head + "," + strings.Repeat(`"a":{`, n) + strings.Repeat("}", n) + "}"
	}, wantLimit("nested at most")},
	{"deep arrays in a field", func() string {
		n := 400_000
		return "{" + head + `,"output_fields":{"x":` + strings.Repeat("[", n) + strings.Repeat("]", n) + "}}"
	}, wantLimit("nested at most")},
	{"deeper than the tokenizer takes", func() string {
		n := 20_000
		return "{" + head + "," + strings.Repeat(`"a":[`, n) + strings.Repeat("]", n) + "}\n{" + head + "}"
	}, func(t *testing.T, b *Body) {
		if len(b.Events) != 1 || b.Rejected != 1 {
			t.Errorf("got %d valid, %d rejected; want the event after it to be read", len(b.Events), b.Rejected)
		}
	}},
	{"many fields", func() string {
		var s strings.Builder
		s.WriteString("{" + head + `,"output_fields":{`)
		for i := range 100_000 {
			fmt.Fprintf(&s, `"f%d":1,`, i)
		}
		s.WriteString(`"z":1}}`)
		return s.String()
	}, wantLimit("at most 1024 fields")},
	{"long names flattened", func() string {
		var s strings.Builder
		s.WriteString("{" + head + `,"` + strings.Repeat("k", 16<<10) + `":{`)
		for i := range 1000 {
			fmt.Fprintf(&s, `"%d":{"a":1,"b":2,"c":3},`, i)
		}
		s.WriteString(`"z":1}}`)
		return s.String()
	}, wantLimit("flattened field names")},
	{"a huge string", func() string {
		return "{" + head + `,"output":"` + strings.Repeat("x", 1<<20) + `"}`
	}, func(t *testing.T, b *Body) {
		if len(b.Events) != 1 || len(b.Events[0].Output) != 1<<20 {
			t.Errorf("the event with a 1 MiB output must decode: %v", b.Errors)
		}
	}},
	{"a million empty objects", func() string {
		return strings.Repeat("{}", 500_000) + "\n" + strings.Repeat("{}\n", 100_000)
	}, func(t *testing.T, b *Body) {
		if !b.TooMany || b.Count != 10_000 {
			t.Errorf("TooMany = %v after %d events; want decoding to stop at the limit", b.TooMany, b.Count)
		}
	}},
	{"lines that swallow the next ones", func() string {
		return strings.Repeat("{\"a\":[\n", 150_000)
	}, func(t *testing.T, b *Body) {
		if !b.TooMany || b.Rejected != 10_000 || len(b.Errors) != DefaultMaxErrors {
			t.Errorf("rejected %d (too many: %v), kept %d errors; want every line rejected up to the limit and %d errors kept", b.Rejected, b.TooMany, len(b.Errors), DefaultMaxErrors)
		}
	}},
	{"a broken array", func() string {
		return "[" + strings.Repeat(`{"a":x},`, 130_000) + "{}]"
	}, func(t *testing.T, b *Body) {
		if !b.TooMany || b.Rejected != 10_000 || b.Unread != nil {
			t.Errorf("rejected %d (too many: %v, unread %v); want every element rejected on its own up to the limit", b.Rejected, b.TooMany, b.Unread)
		}
	}},
	{"an array of commas", func() string {
		return "[1" + strings.Repeat(",", 1<<20) + "]"
	}, func(t *testing.T, b *Body) {
		if !b.TooMany || b.Rejected != 10_000 || len(b.Errors) != DefaultMaxErrors {
			t.Errorf("rejected %d (too many: %v), kept %d errors; want every element rejected up to the limit and %d errors kept", b.Rejected, b.TooMany, len(b.Errors), DefaultMaxErrors)
		}
	}},
}

func wantLimit(msg string) func(t *testing.T, b *Body) {
	return func(t *testing.T, b *Body) {
		t.Helper()
		if len(b.Errors) != 1 || !strings.Contains(b.Errors[0].Error(), msg) {
			t.Errorf("errors %v; want one saying %q", b.Errors, msg)
		}
	}
}

// TestHostileBodiesAreCheap pins what the worst shapes cost: memory
// allocated and bytes read by the tokenizer, both within a small multiple
// of the body's size, counted rather than timed.
func TestHostileBodiesAreCheap(t *testing.T) {
	for _, tc := range hostile {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(tc.body())
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			d := &decoder{}
			b := decodeBodyWith(d, body, Limits{MaxEvents: 10_000})
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d bytes: %d allocated (%.1f×), %d read by the tokenizer", len(body), alloc, float64(alloc)/float64(len(body)), d.scanned)
			if limit := 4*uint64(len(body)) + 1<<20; alloc > limit {
				t.Errorf("allocated %d bytes for a body of %d, more than %d", alloc, len(body), limit)
			}
			if d.scanned > 2*len(body) {
				t.Errorf("the tokenizer read %d bytes of a body of %d", d.scanned, len(body))
			}
			checkAccounting(t, b)
			tc.check(t, b)
		})
	}
}

// BenchmarkHostile decodes each hostile body: MB/s says what a KB costs.
func BenchmarkHostile(b *testing.B) {
	for _, tc := range hostile {
		body := []byte(tc.body())
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				DecodeBody(body, Limits{MaxEvents: 10_000})
			}
		})
	}
}
