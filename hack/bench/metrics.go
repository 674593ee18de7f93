package main

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// sample is one series of a scrape.
type sample struct {
	labels map[string]string
	value  float64
}

// metrics are the samples of one scrape, by metric name. A metric the
// bridge has not exported yet (a vector without children) reads as 0.
type metrics map[string][]sample

// get GETs url and returns the body of a 200 answer, for the caller to
// close.
func get(ctx context.Context, url string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return resp.Body, nil
}

func scrape(ctx context.Context, url string) (metrics, error) {
	body, err := get(ctx, url)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(body)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", url, err)
	}
	ms := metrics{}
	for name, mf := range families {
		for _, m := range mf.GetMetric() {
			s := sample{labels: map[string]string{}, value: m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()}
			for _, lp := range m.GetLabel() {
				s.labels[lp.GetName()] = lp.GetValue()
			}
			ms[name] = append(ms[name], s)
		}
	}
	return ms, nil
}

// sum adds up every sample of a counter or gauge.
func (ms metrics) sum(name string) float64 {
	n := 0.0
	for _, s := range ms[name] {
		n += s.value
	}
	return n
}

// by adds up the samples of a metric by the value of one label, leaving
// out the zeros.
func (ms metrics) by(name, label string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range ms[name] {
		if s.value != 0 {
			out[s.labels[label]] += s.value
		}
	}
	return out
}
