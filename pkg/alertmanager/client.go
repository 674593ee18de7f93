package alertmanager

import (
	"bytes"
	"context"
	"errors"
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
	// outcomeConfig: the bridge is set up wrong for this Alertmanager (a
	// redirect that would lose the POST, 401, 403, 404); tried a few
	// times, then dropped.
	outcomeConfig
)

func (o outcome) String() string {
	switch o {
	case outcomeOK:
		return "success"
	case outcomeRetry:
		return "retryable_error"
	case outcomeRejected:
		return "rejected"
	case outcomeConfig:
		return "config_error"
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
	// For outcomeConfig: the drop reason, and where a redirect pointed.
	reason   string
	location string
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
	switch code := resp.StatusCode; {
	case code/100 == 2 && resp.Request.Method == http.MethodPost:
		// Only the answer to a POST of the batch means it was stored.
		r.outcome = outcomeOK
		return r
	case code/100 == 2, code/100 == 3:
		r.outcome, r.reason = outcomeConfig, DropRedirect
		r.location = resp.Header.Get("Location")
		if r.location == "" {
			r.location = resp.Request.URL.Redacted()
		}
	case code == http.StatusUnauthorized:
		r.outcome, r.reason = outcomeConfig, DropUnauthorized
	case code == http.StatusForbidden:
		r.outcome, r.reason = outcomeConfig, DropForbidden
	case code == http.StatusNotFound:
		r.outcome, r.reason = outcomeConfig, DropNotFound
	case code/100 == 5, code == http.StatusTooManyRequests:
		r.outcome = outcomeRetry
		r.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	default:
		r.outcome = outcomeRejected
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	r.body = strings.TrimSpace(string(b))
	return r
}

// postOnly returns c following only the redirects that keep a POST a POST
// with its body (307, 308), and only when c follows redirects at all
// (http_config follow_redirects). A 301, 302 or 303 would turn the POST
// into a GET, whose 2xx says nothing about the alerts; it is returned as
// it is, and the sender treats it as a configuration error.
func postOnly(c *http.Client) *http.Client {
	cc := *c
	follow := c.CheckRedirect
	cc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.Response == nil || (req.Response.StatusCode != http.StatusTemporaryRedirect && req.Response.StatusCode != http.StatusPermanentRedirect) {
			return http.ErrUseLastResponse
		}
		if follow != nil {
			return follow(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &cc
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
