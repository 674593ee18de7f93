package server

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/labstack/echo/v4"
)

// DefaultMaxBodyBytesInFlight bounds the request bodies held in memory at
// once when Options leave it unset.
const DefaultMaxBodyBytesInFlight = 16 << 20

const (
	// firstRead is the buffer a body starts with: a client announcing
	// megabytes and sending nothing costs no more than this.
	firstRead = 512
	// busyRetryAfter is the Retry-After, in seconds, of a request
	// refused because too many bodies are being read: they are read
	// within --web.read-timeout, so room comes back soon.
	busyRetryAfter = "1"
)

// bodyBudget bounds the bytes of all request bodies held in memory at
// once. A body takes from it as its buffer grows, never more than was read
// (doubled) and never on the strength of Content-Length, and gives it all
// back when its handler returns.
type bodyBudget struct {
	max  int64
	used atomic.Int64
}

// take reserves n bytes, or reports that they would exceed the bound.
func (b *bodyBudget) take(n int64) bool {
	for {
		used := b.used.Load()
		if used+n > b.max {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

func (b *bodyBudget) give(n int64) { b.used.Add(-n) }

// readBody reads the request body, gunzipping it when it says so. It
// answers 413 past limit bytes (before or after decompression; setting
// names the limit) and 503 when the bodies in flight together would exceed
// the budget. The caller calls release, also after an error, when it is
// done with the body.
func readBody(c echo.Context, limit int64, setting string, budget *bodyBudget) (body []byte, release func(), err error) {
	var charged int64
	release = func() { budget.give(charged) }
	body, err = readBodyCharged(c, limit, setting, func(n int64) bool {
		if !budget.take(n) {
			return false
		}
		charged += n
		return true
	})
	return body, release, err
}

// readBodyCharged is readBody asking take for every growth of the buffer.
func readBodyCharged(c echo.Context, limit int64, setting string, take func(int64) bool) ([]byte, error) {
	req := c.Request()
	var r io.Reader = http.MaxBytesReader(c.Response(), req.Body, limit)
	switch enc := strings.ToLower(strings.TrimSpace(req.Header.Get(echo.HeaderContentEncoding))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			if tooLarge(err) {
				return nil, bodyTooLarge(limit, setting)
			}
			return nil, echo.NewHTTPError(http.StatusBadRequest, "the body is not valid gzip: "+err.Error())
		}
		defer zr.Close()
		r = zr
	default:
		return nil, echo.NewHTTPError(http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Encoding %q is not supported: send gzip or nothing", enc))
	}
	body, err := readLimited(r, limit, take)
	switch {
	case errors.Is(err, errBusy):
		c.Response().Header().Set("Retry-After", busyRetryAfter)
		return nil, echo.NewHTTPError(http.StatusServiceUnavailable,
			"too many request bodies are being read at once (web.max_request_bytes_in_flight); retry later")
	case tooLarge(err):
		return nil, bodyTooLarge(limit, setting)
	case err != nil:
		return nil, echo.NewHTTPError(http.StatusBadRequest, "reading the body failed: "+err.Error())
	case int64(len(body)) > limit:
		return nil, bodyTooLarge(limit, setting)
	}
	return body, nil
}

var errBusy = errors.New("body budget exhausted")

// readLimited reads r to its end or to limit+1 bytes, whichever comes
// first, so that "exactly the limit" and "more" differ. Its buffer starts
// small and doubles only when full, so it grows with the bytes that
// arrived; take is asked for every growth and a refusal ends the read with
// errBusy.
func readLimited(r io.Reader, limit int64, take func(n int64) bool) ([]byte, error) {
	var buf []byte
	for int64(len(buf)) <= limit {
		if len(buf) == cap(buf) {
			grow := min(max(int64(cap(buf)), firstRead), limit+1-int64(cap(buf)))
			if !take(grow) {
				return nil, errBusy
			}
			next := make([]byte, len(buf), int64(cap(buf))+grow)
			copy(next, buf)
			buf = next
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

func tooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

func bodyTooLarge(limit int64, setting string) error {
	return echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes (%s)", limit, setting))
}
