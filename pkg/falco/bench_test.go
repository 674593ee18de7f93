package falco

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
)

// BenchmarkDecode decodes one typical Falco 0.41+ syscall alert (2 KB, 25
// output fields), what every http_output POST carries.
func BenchmarkDecode(b *testing.B) {
	body, err := os.ReadFile("../mapping/testdata/events/syscall_k8s_critical.json")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		evs, errs := Decode(body)
		if len(evs) != 1 || len(errs) != 0 {
			b.Fatal(errs)
		}
	}
}

// BenchmarkTokenizer is how the tokenizer was chosen: walking every token
// of the same alert with encoding/json's Decoder and with jsontext, the
// two maintained streaming tokenizers that keep exact numbers and give
// offsets.
func BenchmarkTokenizer(b *testing.B) {
	body, err := os.ReadFile("../mapping/testdata/events/syscall_k8s_critical.json")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.UseNumber()
			for {
				if _, err := dec.Token(); err != nil {
					if !errors.Is(err, io.EOF) {
						b.Fatal(err)
					}
					break
				}
			}
		}
	})
	b.Run("jsontext", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		var dec jsontext.Decoder
		for b.Loop() {
			dec.Reset(bytes.NewBuffer(body))
			for {
				if _, err := dec.ReadToken(); err != nil {
					if !errors.Is(err, io.EOF) {
						b.Fatal(err)
					}
					break
				}
			}
		}
	})
}
