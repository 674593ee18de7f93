package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

var columns = []string{
	"scenario", "events", "accepted/s", "ceiling/s", "× ceiling", "delivered", "delivered/s",
	"e2e p50", "e2e p99", "CPU µs/event", "ceiling µs/event", "peak RSS", "dropped", "AM alerts / requests",
}

// writeTable prints the results as one Markdown table, then a line per
// scenario saying what it sends and anything that went wrong.
func writeTable(w io.Writer, results []result) {
	fmt.Fprintf(w, "| %s |\n", strings.Join(columns, " | "))
	seps := make([]string, len(columns))
	for i := range seps {
		seps[i] = "---:"
	}
	seps[0] = "---"
	fmt.Fprintf(w, "| %s |\n", strings.Join(seps, " | "))
	for _, r := range results {
		cells := []string{
			r.Scenario.Name,
			thousands(r.Load.Events),
			thousands(int(r.acceptedPerSec())),
			thousands(int(r.ceilingPerSec())),
			fmt.Sprintf("%.2f", r.ratio()),
			thousands(r.AM.Represented),
			thousands(int(r.deliveredPerSec())),
			millis(r.AM.P50),
			millis(r.AM.P99),
			fmt.Sprintf("%.1f", perEvent(r.CPU, r.Load.Events)),
			fmt.Sprintf("%.1f", perEvent(r.CeilCPU, r.Ceiling.Events)),
			fmt.Sprintf("%.0f MiB", float64(r.PeakRSS)/(1<<20)),
			thousands(int(r.dropped())),
			thousands(r.AM.Alerts) + " / " + thousands(r.AM.Requests),
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
	fmt.Fprintln(w)
	for _, r := range results {
		fmt.Fprintf(w, "- %s: %s; this tool used %.0f µs/event beside the bridge, %.0f beside the ceiling.",
			r.Scenario.Name, r.Scenario.describe(), perEvent(r.ToolCPU, r.Load.Events), perEvent(r.CeilToolCPU, r.Ceiling.Events))
		if len(r.Ratios) > 0 {
			ratios := make([]string, len(r.Ratios))
			for i, x := range r.Ratios {
				ratios[i] = fmt.Sprintf("%.2f", x)
			}
			fmt.Fprintf(w, " Median of %d runs, ratios %s.", len(r.Ratios), strings.Join(ratios, ", "))
		}
		for _, p := range r.problems() {
			fmt.Fprintf(w, " %s.", p)
		}
		fmt.Fprintln(w)
	}
}

// problems lists what did not go as a healthy bridge would have it.
func (r result) problems() []string {
	var out []string
	if r.Load.Accepted != r.Load.Events {
		out = append(out, fmt.Sprintf("answers %v, %d without an answer, first: %s", r.Load.Statuses, r.Load.Errors, r.Load.FirstErr))
	}
	add := func(what string, m map[string]float64) {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			out = append(out, fmt.Sprintf("%s %s: %s", what, k, thousands(int(m[k]))))
		}
	}
	add("alerts dropped", r.AlertsDropped)
	add("events dropped", r.EventsDropped)
	if r.Invalid > 0 {
		out = append(out, "invalid events: "+thousands(int(r.Invalid)))
	}
	if r.MappingErrors > 0 {
		out = append(out, "mapping errors: "+thousands(int(r.MappingErrors)))
	}
	if !r.Complete && r.AM.Represented < r.Load.Accepted {
		out = append(out, fmt.Sprintf("%s accepted events never reached Alertmanager", thousands(r.Load.Accepted-r.AM.Represented)))
	}
	if r.AM.Duplicates > 0 {
		out = append(out, "delivered twice: "+thousands(r.AM.Duplicates))
	}
	if r.AM.Foreign > 0 {
		out = append(out, "alerts without a token: "+thousands(r.AM.Foreign))
	}
	if r.AM.Bad > 0 {
		out = append(out, fmt.Sprintf("Alertmanager requests refused as malformed: %s, first: %s", thousands(r.AM.Bad), r.AM.FirstBad))
	}
	return out
}

// thousands writes n with a comma between groups of three digits.
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func millis(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	ms := float64(d) / float64(time.Millisecond)
	if ms < 10 {
		return fmt.Sprintf("%.1f ms", ms)
	}
	return fmt.Sprintf("%.0f ms", ms)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

var realColumns = []string{
	"scenario", "events", "answered 202", "in Alertmanager", "dropped", "in AM + dropped",
	"delivered/s", "× AM alone", "delivered in", "peak RSS", "max disk",
}

// writeRealTable prints the real-Alertmanager results as one Markdown
// table, after what Alertmanager alone takes, then a line per scenario.
func writeRealTable(w io.Writer, c amCeiling, results []realResult) {
	if c.Best.Batch > 0 {
		fmt.Fprintf(w, "Alertmanager alone (%s distinct alerts POSTed to /api/v2/alerts of a fresh Alertmanager per try, best of %d): %s alerts/s, batches of %d over %d connection%s.",
			thousands(c.Alerts), c.Passes, thousands(int(c.Best.perSec())), c.Best.Batch, c.Best.Conns, plural(c.Best.Conns))
		tries := make([]string, 0, len(c.Tries))
		for _, t := range c.Tries {
			v := thousands(int(t.perSec()))
			if t.Err != "" {
				v = "failed"
			}
			tries = append(tries, fmt.Sprintf("%d×%d %s", t.Batch, t.Conns, v))
		}
		fmt.Fprintf(w, " Every try (batch×connections alerts/s): %s.\n\n", strings.Join(tries, ", "))
	}
	fmt.Fprintf(w, "| %s |\n", strings.Join(realColumns, " | "))
	seps := make([]string, len(realColumns))
	for i := range seps {
		seps[i] = "---:"
	}
	seps[0] = "---"
	fmt.Fprintf(w, "| %s |\n", strings.Join(seps, " | "))
	for _, r := range results {
		inAM, sum, rate, ratio, in := "-", "-", "-", "-", "-"
		if r.InAM >= 0 {
			inAM = thousands(r.InAM)
			sum = thousands(r.InAM + int(r.dropped()))
			if r.Delivery > 0 {
				rate = thousands(int(r.deliveredPerSec()))
				in = seconds(r.Delivery)
				if best := c.Best.perSec(); best > 0 {
					ratio = fmt.Sprintf("%.2f", r.deliveredPerSec()/best)
				}
			}
		}
		disk := "-"
		if r.Scenario.Durable {
			disk = fmt.Sprintf("%.0f MiB", r.MaxDisk/(1<<20))
		}
		cells := []string{
			r.Scenario.Name,
			thousands(r.Load.Events),
			thousands(r.Load.Accepted),
			inAM,
			thousands(int(r.dropped())),
			sum,
			rate,
			ratio,
			in,
			fmt.Sprintf("%.0f MiB", float64(r.PeakRSS)/(1<<20)),
			disk,
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
	fmt.Fprintln(w)
	for _, r := range results {
		fmt.Fprintf(w, "- %s: %s.", r.Scenario.Name, r.Scenario.describe())
		if r.Scenario.AM == amAfter {
			fmt.Fprint(w, " Delivered in: from Alertmanager's start.")
		}
		fmt.Fprintf(w, " The bridge's queue held at most %.0f MiB (queue_bytes), its Go heap in use at most %.0f MiB.",
			r.MaxQueue/(1<<20), r.MaxHeap/(1<<20))
		for _, n := range r.notes() {
			fmt.Fprintf(w, " %s.", n)
		}
		fmt.Fprintln(w)
	}
}

// notes lists what did not go as a healthy bridge would have it, and the
// outcome of the one-by-one check of a crash scenario.
func (r realResult) notes() []string {
	var out []string
	if r.Load.Accepted != r.Load.Events {
		out = append(out, fmt.Sprintf("answers %v, %d without an answer, first: %s", r.Load.Statuses, r.Load.Errors, r.Load.FirstErr))
	}
	for _, k := range slices.Sorted(maps.Keys(r.Dropped)) {
		out = append(out, fmt.Sprintf("alerts dropped %s: %s", k, thousands(int(r.Dropped[k]))))
	}
	if r.InAM >= 0 && !r.Complete {
		out = append(out, fmt.Sprintf("Alertmanager holds %s alerts for %s events answered 202", thousands(r.InAM), thousands(r.Load.Accepted)))
	}
	if r.Missing > 0 {
		out = append(out, fmt.Sprintf("%s events answered 202 are not in Alertmanager", thousands(r.Missing)))
	} else if r.Missing == 0 {
		out = append(out, "Every event answered 202 is in Alertmanager")
	}
	return out
}

func seconds(d time.Duration) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}
