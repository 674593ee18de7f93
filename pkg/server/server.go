// Package server is the HTTP side of falco-am-bridge: the ingest endpoint
// Falco posts to, health and readiness, metrics and reload. Handlers get
// their dependencies as arguments and hold no other state.
package server

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/defaults"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/falco"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/metric"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/pipeline"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/ratelog"
)

// Pipeline runs a body of events: it decodes them, maps them and queues
// the alerts (see pipeline.Pipeline.Run). It must not wait on
// Alertmanager.
type Pipeline interface {
	Run(body []byte, received time.Time, lim falco.Limits) *pipeline.Body
}

// Accepted says what became of a request's valid events.
type Accepted struct {
	Events        int `json:"accepted"`       // valid events taken
	Alerts        int `json:"alerts"`         // alerts queued
	Dropped       int `json:"dropped"`        // events dropped by the mapping's filters
	MappingErrors int `json:"mapping_errors"` // template errors; alerts were still made
	Queues        int `json:"alertmanagers"`  // Alertmanager queues each alert went to; 0 while none is known (held)
}

// Options configure the server.
type Options struct {
	MaxRequestBytes     int64
	MaxEventsPerRequest int
	// MaxBodyBytesInFlight bounds the memory of all request bodies read
	// at once; past it requests are answered 503. 0 means
	// DefaultMaxBodyBytesInFlight.
	MaxBodyBytesInFlight int64
	// BearerToken, when it returns a non-empty token, must be presented
	// on the ingest and reload endpoints.
	BearerToken func() string
}

// Deps are what the handlers need.
type Deps struct {
	Logger   *slog.Logger
	Pipeline Pipeline
	// Ready says whether the bridge can take events; nil error means yes.
	Ready func() error
	// Reload reloads the configuration; nil disables POST /-/reload.
	Reload   func() error
	Gatherer prometheus.Gatherer
	Registry prometheus.Registerer
	// UI serves the status page and the playground; nil turns them off.
	UI *UI
}

type metrics struct {
	requests *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	return &metrics{
		requests: metric.With(reg, "").CounterVec("http_requests_total", "HTTP requests by handler and status code.", "handler", "code"),
	}
}

// New returns the HTTP handler of the bridge.
func New(opts Options, deps Deps) http.Handler {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	// The peer's address, never a header it may have made up.
	e.IPExtractor = echo.ExtractIPDirect()
	m := newMetrics(deps.Registry)
	budget := &bodyBudget{max: opts.MaxBodyBytesInFlight}
	defaults.Set(&budget.max, DefaultMaxBodyBytesInFlight)
	metric.With(deps.Registry, "").GaugeFunc("http_request_body_bytes",
		"Memory held by the request bodies being read or handled now; bounded by --web.max-request-bytes-in-flight.",
		func() float64 { return float64(budget.used.Load()) })
	e.HTTPErrorHandler = errorHandler(deps.Logger)
	e.Use(countRequests(m), sameOrigin)

	auth := bearerAuth(opts.BearerToken)
	sampler := ratelog.New(10 * time.Second)
	e.POST("/", ingest(opts, deps.Pipeline, budget, deps.Logger, sampler), auth)
	healthy := func(c echo.Context) error { return c.String(http.StatusOK, "falco-am-bridge is Healthy.\n") }
	e.GET("/-/healthy", healthy)
	e.HEAD("/-/healthy", healthy)
	ready := readiness(deps.Ready)
	e.GET("/-/ready", ready)
	e.HEAD("/-/ready", ready)
	if deps.Gatherer != nil {
		e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(deps.Gatherer, promhttp.HandlerOpts{})))
	}
	if deps.Reload != nil {
		e.POST("/-/reload", reload(deps.Reload), auth)
	}
	registerUI(e, deps.UI, opts.BearerToken, budget)
	return e
}

// routeName keeps the handler label of the request counter bounded.
func routeName(c echo.Context) string {
	switch p := c.Path(); p {
	case "/", "/-/healthy", "/-/ready", "/metrics", "/-/reload", "/api/v1/translate":
		return p
	default:
		return "other"
	}
}

func countRequests(m *metrics) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			err := next(c)
			code := c.Response().Status
			if err != nil {
				var he *echo.HTTPError
				if errors.As(err, &he) {
					code = he.Code
				} else {
					code = http.StatusInternalServerError
				}
			}
			m.requests.WithLabelValues(routeName(c), strconv.Itoa(code)).Inc()
			return err
		}
	}
}

// sameOrigin refuses, with 403, a POST (or any unsafe method) that a
// browser sends on behalf of a page of another origin, since any web page
// a user of the bridge opens could otherwise make their browser post to
// /-/reload or the translate API. Falco, curl and scripts send neither
// Origin nor Sec-Fetch-Site and pass; so does the playground, which posts
// to its own origin.
func sameOrigin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if crossOrigin(c.Request()) {
			return echo.NewHTTPError(http.StatusForbidden,
				"cross-origin request refused: a browser may post here only from a page of the bridge's own origin; "+
					"from elsewhere use a client that is not a browser, or a proxy")
		}
		return next(c)
	}
}

// crossOrigin says whether r is an unsafe request made by a browser for
// another origin: its Sec-Fetch-Site is cross-site or same-site, or its
// Origin (null included) is not the Host it was sent to. Unlike
// http.CrossOriginProtection, a same-origin Sec-Fetch-Site does not excuse
// an Origin that disagrees with Host.
func crossOrigin(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return true
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	u, err := url.Parse(origin)
	return err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host)
}

// errorBody is the JSON of every error answer.
type errorBody struct {
	Status string `json:"status"`
	Error  string `json:"error"`
}

func errorHandler(logger *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		code := http.StatusInternalServerError
		msg := "internal error"
		var he *echo.HTTPError
		if errors.As(err, &he) {
			code = he.Code
			if s, ok := he.Message.(string); ok {
				msg = s
			} else {
				msg = http.StatusText(code)
			}
		} else {
			logger.Error("request failed", "path", c.Request().URL.Path, "err", err)
		}
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(code)
			return
		}
		_ = c.JSON(code, errorBody{Status: "error", Error: msg})
	}
}

func readiness(ready func() error) echo.HandlerFunc {
	return func(c echo.Context) error {
		if ready != nil {
			if err := ready(); err != nil {
				return c.String(http.StatusServiceUnavailable, "falco-am-bridge is not ready: "+err.Error()+"\n")
			}
		}
		return c.String(http.StatusOK, "falco-am-bridge is Ready.\n")
	}
}

func reload(fn func() error) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := fn(); err != nil {
			return echo.NewHTTPError(http.StatusInternalServerError, "reload failed: "+err.Error())
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "success"})
	}
}
