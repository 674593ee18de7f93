package alertmanager

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxErrorBody is how much of an error response is read and logged.
const maxErrorBody = 1024

// AlertsURL returns the v2 alerts endpoint under an Alertmanager's base URL,
// keeping any path prefix (an Alertmanager behind /alertmanager/).
func AlertsURL(base *url.URL) *url.URL {
	return base.JoinPath("api", "v2", "alerts")
}

// outcome classifies an Alertmanager response.
type outcome int

const (
	outcomeOK        outcome = iota
	outcomeRetry             // network error, 5xx, 429: try again later
	outcomeRejected          // other 4xx: trying again will not help
	outcomeCancelled         // we gave up waiting (shutdown)
)

func (o outcome) String() string {
	switch o {
	case outcomeOK:
		return "success"
	case outcomeRetry:
		return "retryable_error"
	case outcomeRejected:
		return "rejected"
	default:
		return "cancelled"
	}
}

// response is what one POST gave.
type response struct {
	outcome    outcome
	status     int
	retryAfter time.Duration
	body       string // the start of an error body
	err        error
}

func (r response) Error() string {
	switch {
	case r.err != nil:
		return r.err.Error()
	case r.body != "":
		return fmt.Sprintf("%s: %s", http.StatusText(r.status), r.body)
	default:
		return http.StatusText(r.status)
	}
}

// client posts alert batches to one Alertmanager.
type client struct {
	url       string
	http      *http.Client
	timeout   time.Duration
	userAgent string
}

func (c *client) post(ctx context.Context, body []byte, now time.Time) response {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return response{outcome: outcomeRejected, err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil && ctx.Err() != context.DeadlineExceeded {
			return response{outcome: outcomeCancelled, err: err}
		}
		return response{outcome: outcomeRetry, err: err}
	}
	defer func() {
		// Drain so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}()
	r := response{status: resp.StatusCode}
	switch {
	case resp.StatusCode/100 == 2:
		r.outcome = outcomeOK
		return r
	case resp.StatusCode/100 == 5, resp.StatusCode == http.StatusTooManyRequests:
		r.outcome = outcomeRetry
		r.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	default:
		r.outcome = outcomeRejected
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	r.body = strings.TrimSpace(string(b))
	return r
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
