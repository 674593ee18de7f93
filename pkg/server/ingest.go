package server

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/sync/semaphore"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/falco"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/pipeline"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/ratelog"
)

// maxErrorsShown caps the per-event errors listed in one answer.
const maxErrorsShown = 100

// EventError is one invalid event in a 400 answer.
type EventError struct {
	Index    int    `json:"index"`
	Line     int    `json:"line"`
	Field    string `json:"field,omitempty"`
	Expected string `json:"expected"`
	Got      string `json:"got,omitempty"`
	Message  string `json:"message"`
}

// IngestAnswer is the JSON answer of POST /.
type IngestAnswer struct {
	Status string `json:"status"` // accepted, or error when some events were invalid
	Accepted
	Rejected int          `json:"rejected"`
	Errors   []EventError `json:"errors,omitempty"`
	// ErrorsTruncated is set when there were more errors than listed.
	ErrorsTruncated bool `json:"errors_truncated,omitempty"`
	// Unread, when set, is the index of the first event that could not
	// be read: the body is broken there, and nothing after it was taken.
	// Otherwise accepted + rejected is every event of the body.
	Unread *int `json:"unread_from,omitempty"`
}

const jsonOutputHint = "Content-Type text/plain is not JSON: Falco sends text unless json_output is enabled; set json_output: true in falco.yaml (Helm: falco.json_output=true), or send application/json"

func ingest(opts Options, p Pipeline, budget *bodyBudget, logger *slog.Logger, invalidLog *ratelog.Sampler) echo.HandlerFunc {
	// Decoding and mapping are pure CPU: running more of them at once
	// than there are cores only makes the goroutines that deliver alerts
	// wait longer for one, so that a flat-out burst outruns delivery.
	// They also hold several times the body in events, alerts and their
	// encodings until the body is queued: so bodies being decoded share
	// web.max_request_bytes, each taking at least a core's share of it.
	// A body of the largest size is decoded alone; small ones, one per
	// core.
	decoding := semaphore.NewWeighted(opts.MaxRequestBytes)
	share := max(opts.MaxRequestBytes/int64(runtime.GOMAXPROCS(0)), 1)
	return func(c echo.Context) error {
		received := time.Now()
		if err := checkJSONType(c.Request().Header.Get(echo.HeaderContentType)); err != nil {
			return err
		}
		body, release, err := readBody(c, opts.MaxRequestBytes, "web.max_request_bytes", budget)
		defer release()
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(body)) == 0 {
			return echo.NewHTTPError(http.StatusBadRequest, "empty body: expected a Falco event as JSON")
		}
		if !falco.LooksLikeJSON(body) {
			return echo.NewHTTPError(http.StatusBadRequest, "the body is not a JSON object or array")
		}

		weight := min(max(int64(len(body)), share), opts.MaxRequestBytes)
		if err := decoding.Acquire(c.Request().Context(), weight); err != nil {
			// The client went away while its body waited: nothing was
			// taken.
			return echo.NewHTTPError(http.StatusServiceUnavailable, "the request ended before its body was decoded: "+err.Error())
		}
		res := p.Run(body, received, falco.Limits{MaxEvents: opts.MaxEventsPerRequest})
		decoding.Release(weight)
		if res.TooMany {
			return echo.NewHTTPError(http.StatusRequestEntityTooLarge,
				fmt.Sprintf("more than %d events in one request (web.max_events_per_request)", opts.MaxEventsPerRequest))
		}
		if res.Err != nil {
			// Nothing was taken: say so, so a sender that cares can
			// retry.
			c.Response().Header().Set("Retry-After", strconv.Itoa(max(1, int(res.Err.RetryAfter.Seconds()))))
			return echo.NewHTTPError(http.StatusServiceUnavailable, "events could not be queued, nothing was taken; retry later: "+res.Err.Error())
		}
		ans := answer(res)
		errs := res.Errors() // the unread rest of the body included
		if len(errs) == 0 && res.Rejected == 0 {
			// What most requests get (Falco sends one event per POST):
			// written without reflection.
			return c.Blob(http.StatusAccepted, echo.MIMEApplicationJSON, ans.appendAccepted(make([]byte, 0, 160)))
		}
		if ok, suppressed := invalidLog.Allow(received); ok {
			first := "(beyond the errors kept)"
			if len(errs) > 0 {
				first = errs[0].Error()
			}
			logger.Warn("invalid Falco events rejected", "remote", c.RealIP(), "invalid", res.Rejected, "valid", res.Received-res.Rejected, "first", first, "suppressed_since_last", suppressed)
		}
		ans.Status = "error"
		ans.ErrorsTruncated = len(errs) > maxErrorsShown || res.Rejected > len(errs)
		for _, e := range errs[:min(len(errs), maxErrorsShown)] {
			ans.Errors = append(ans.Errors, EventError{
				Index: e.Index, Line: e.Line, Field: e.Field, Expected: e.Expected, Got: e.Got, Message: e.Error(),
			})
		}
		return c.JSON(http.StatusBadRequest, ans)
	}
}

// appendAccepted appends the JSON of an answer without errors: what
// encoding/json writes of it, and a newline, as echo's JSON does.
func (a *IngestAnswer) appendAccepted(b []byte) []byte {
	b = append(b, `{"status":"`...)
	b = append(b, a.Status...)
	for _, f := range []struct {
		key string
		n   int
	}{
		{`","accepted":`, a.Events}, {`,"alerts":`, a.Alerts}, {`,"dropped":`, a.Dropped},
		{`,"mapping_errors":`, a.MappingErrors}, {`,"alertmanagers":`, a.Queues}, {`,"rejected":`, a.Rejected},
	} {
		b = append(b, f.key...)
		b = strconv.AppendInt(b, int64(f.n), 10)
	}
	return append(b, "}\n"...)
}

// answer counts what became of a body's events.
func answer(res *pipeline.Body) IngestAnswer {
	ans := IngestAnswer{Status: "accepted", Rejected: res.Rejected, Accepted: Accepted{
		Events: res.Received - res.Rejected, Alerts: res.Alerts, Dropped: res.Dropped,
		MappingErrors: res.MappingErrors, Queues: res.Queues,
	}}
	if res.Unread != nil {
		ans.Unread = &res.Unread.Index
	}
	return ans
}

// checkJSONType answers 415 unless the Content-Type is JSON (or
// newline-delimited JSON). Falco's http_output and falcosidekick send
// application/json; an HTML form cannot, so a page on another site cannot
// make a browser post events.
func checkJSONType(ct string) error {
	if ct == "" {
		return echo.NewHTTPError(http.StatusUnsupportedMediaType, "no Content-Type: send the events as application/json")
	}
	mt, _, err := mime.ParseMediaType(ct)
	switch {
	case err != nil:
		return echo.NewHTTPError(http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q cannot be parsed: send application/json", ct))
	case mt == "application/json" || strings.HasSuffix(mt, "+json") || mt == "application/x-ndjson" || mt == "application/jsonl":
		return nil
	case mt == "text/plain":
		return echo.NewHTTPError(http.StatusUnsupportedMediaType, jsonOutputHint)
	default:
		return echo.NewHTTPError(http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %s is not JSON: send application/json (or application/x-ndjson)", mt))
	}
}

// bearerAuth checks Authorization: Bearer when a token is configured.
func bearerAuth(token func() string) echo.MiddlewareFunc {
	return requireToken(token, bearerToken, `Bearer realm="falco-am-bridge"`, "missing or wrong bearer token")
}

// requireToken answers 401, with challenge, to a request from which
// presented gives no token or not the configured one; with no token
// configured every request passes.
func requireToken(token func() string, presented func(*http.Request) (string, bool), challenge, msg string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if token == nil {
				return next(c)
			}
			want := token()
			if want == "" {
				return next(c)
			}
			got, ok := presented(c.Request())
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, challenge)
				return echo.NewHTTPError(http.StatusUnauthorized, msg)
			}
			return next(c)
		}
	}
}

// bearerToken returns the token of an Authorization: Bearer header. The
// scheme is case-insensitive (RFC 9110, 11.1).
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, _ := strings.Cut(r.Header.Get(echo.HeaderAuthorization), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(token), true
}
