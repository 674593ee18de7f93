package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/alertmanager/api/v2/models"
	"github.com/spf13/cobra"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/app"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/config"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/falco"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/mapping"
	translatepkg "github.com/falco-am-bridge/falco-am-bridge/pkg/translate"
)

func newTranslate(stdio IO) *cobra.Command {
	var mappingFile, now string
	var api bool
	cmd := &cobra.Command{
		Use:   "translate [--mapping.file FILE] [--now RFC3339] [FILE...]",
		Short: "Print the Alertmanager alerts that Falco events become",
		Long: `Read Falco JSON events (one object, an array, or newline-delimited) from the
files, or from standard input when none is given, and print a JSON array of
the Alertmanager alerts the server would send for them, in input order.

Invalid events are reported on standard error, one line each naming the
event and the field, and make the exit status 1; the valid ones are still
printed. Events the mapping drops are noted on standard error.`,
		Example: `  falco-am-bridge translate event.json
  falco-am-bridge translate --now 2026-01-01T00:00:00Z --mapping.file my-mapping.yaml events.jsonl
  kubectl logs ds/falco | grep '^{' | falco-am-bridge translate`,
		RunE: func(cmd *cobra.Command, files []string) error {
			received := time.Now()
			if now != "" {
				t, err := time.Parse(time.RFC3339Nano, now)
				if err != nil {
					return fmt.Errorf("--now: %q is not an RFC3339 time", now)
				}
				received = t
			}
			m, err := app.LoadMapping(mappingFile)
			if err != nil {
				return err
			}
			if api {
				return translateAPI(m, received, stdio)
			}
			ok, err := translate(m, files, received, stdio)
			if err != nil {
				return err
			}
			if !ok {
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&mappingFile, "mapping.file", "", "Label-mapping file; empty uses the built-in mapping.")
	cmd.Flags().StringVar(&now, "now", "", "Arrival time to assume (RFC3339), for reproducible output; default the current time.")
	// The server runs POST /api/v1/translate in a process of its own, so
	// that a template that runs away can be killed.
	cmd.Flags().BoolVar(&api, "api", false, "Read a POST /api/v1/translate request on standard input and write its answer.")
	_ = cmd.Flags().MarkHidden("api")
	return cmd
}

// maxEventInput bounds each input of translate: a replay of a day of
// events fits, a wrong file (/dev/zero) ends the run at once.
const maxEventInput = 64 << 20

type input struct {
	name string
	data []byte
}

// translate prints the alerts of every input and says whether all events
// were valid.
func translate(m *mapping.Mapping, files []string, received time.Time, stdio IO) (bool, error) {
	var inputs []input
	if len(files) == 0 {
		data, err := io.ReadAll(io.LimitReader(stdio.Stdin, maxEventInput+1))
		if err != nil {
			return false, fmt.Errorf("reading standard input: %w", err)
		}
		if len(data) > maxEventInput {
			return false, fmt.Errorf("standard input: larger than %d MiB", maxEventInput>>20)
		}
		inputs = append(inputs, input{name: "stdin", data: data})
	}
	for _, f := range files {
		data, err := config.ReadFile("events", f, maxEventInput)
		if err != nil {
			return false, err
		}
		inputs = append(inputs, input{name: f, data: data})
	}

	valid := true
	alerts := models.PostableAlerts{}
	for _, in := range inputs {
		res := translatepkg.Body(m, in.data, received, falco.Limits{})
		for _, n := range res.Notes {
			fmt.Fprintf(stdio.Stderr, "%s: %s\n", in.name, n.Message)
		}
		valid = valid && res.Valid
		alerts = append(alerts, res.Alerts...)
	}
	out, err := json.Marshal(alerts)
	if err != nil {
		return false, err
	}
	var b bytes.Buffer
	if err := json.Indent(&b, unescapeHTML(out), "", "  "); err != nil {
		return false, err
	}
	b.WriteByte('\n')
	_, err = stdio.Stdout.Write(b.Bytes())
	return valid, err
}

// unescapeHTML turns the \u003c, \u003e and \u0026 escapes that Go's JSON
// encoder writes back into <, > and &, so command lines read as they were.
// Escapes are read left to right, so an escaped backslash is never taken
// for the start of one.
func unescapeHTML(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 >= len(b) {
			out = append(out, b[i])
			continue
		}
		if b[i+1] == 'u' && i+6 <= len(b) {
			switch string(b[i+2 : i+6]) {
			case "003c":
				out = append(out, '<')
				i += 5
				continue
			case "003e":
				out = append(out, '>')
				i += 5
				continue
			case "0026":
				out = append(out, '&')
				i += 5
				continue
			}
		}
		out = append(out, b[i], b[i+1])
		i++
	}
	return out
}
