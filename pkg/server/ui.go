package server

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/mapping"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/status"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/translate"
)

// UI is what the status page, the playground and their APIs need. A nil
// Deps.UI serves none of them.
type UI struct {
	// Recent holds the last events; the ingest handler adds the invalid
	// ones.
	Recent *status.Recent
	// Status returns the bridge's state now.
	Status func() (status.Status, error)
	// Mapping returns the running mapping.
	Mapping func() *mapping.Mapping
	// Translate answers POST /api/v1/translate where a template that
	// runs away can be stopped (a process of its own); the request's
	// Mapping is always set. Nil runs translate.API in-process.
	Translate func(ctx context.Context, req translate.Request) (translate.Answer, error)
}

// Bounds of POST /api/v1/translate: an event and a mapping are small, and
// the playground sends one request per edit.
const (
	translateMaxBytes = 1 << 20
	translateTimeout  = 2 * time.Second
	// TranslateMaxAnswer bounds the answer, since a mapping can make
	// its values as long as it likes.
	TranslateMaxAnswer = 4 << 20
	// translateParallel is how many translations run at once; a template
	// that runs away keeps its slot until it ends.
	translateParallel = 2
)

// contentSecurityPolicy allows the page's own script, style and requests
// and nothing else: no inline script, no other origin, no framing.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"

//go:embed ui
var uiFiles embed.FS

type uiHandler struct {
	ui        *UI
	pages     *template.Template
	samples   []sample
	translate chan struct{}
	budget    *bodyBudget
}

type sample struct {
	Name  string          `json:"name"`
	Event json.RawMessage `json:"event"`
}

// registerUI adds the status page, the playground and their APIs to e,
// behind auth.
func registerUI(e *echo.Echo, ui *UI, token func() string, budget *bodyBudget) {
	if ui == nil {
		return
	}
	h := &uiHandler{ui: ui, translate: make(chan struct{}, translateParallel), budget: budget}
	h.pages = template.Must(template.New("").Funcs(template.FuncMap{
		"ts":        func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		"ago":       ago,
		"duration":  func(s float64) string { return (time.Duration(s) * time.Second).String() },
		"percent80": func(n int) int { return n * 8 / 10 },
		"mib":       func(n int64) int64 { return n >> 20 },
	}).ParseFS(uiFiles, "ui/*.html"))
	h.samples = loadSamples()

	// Middleware per route, not an echo Group: a group's catch-all
	// would answer 404 where a wrong method on POST / must get 405.
	mw := []echo.MiddlewareFunc{uiAuth(token), securityHeaders}
	e.GET("/", h.statusPage, mw...)
	e.GET("/ui/status", h.statusFragment, mw...)
	e.GET("/playground", h.playground, mw...)
	e.GET("/static/:file", h.static, mw...)
	e.GET("/api/v1/status", h.statusJSON, mw...)
	e.GET("/api/v1/samples", func(c echo.Context) error { return c.JSON(http.StatusOK, h.samples) }, mw...)
	e.POST("/api/v1/translate", h.translateJSON, mw...)
}

func loadSamples() []sample {
	names, _ := fs.Glob(uiFiles, "ui/samples/*.json")
	out := make([]sample, 0, len(names))
	for _, n := range names {
		b, err := uiFiles.ReadFile(n)
		if err != nil {
			panic(err) // embedded: cannot happen
		}
		name := strings.TrimSuffix(path.Base(n), ".json")
		if _, rest, ok := strings.Cut(name, "-"); ok {
			name = rest
		}
		out = append(out, sample{Name: strings.ReplaceAll(name, "-", " "), Event: bytes.TrimSpace(b)})
	}
	return out
}

// uiAuth guards the pages and their APIs with the ingest bearer token,
// when one is set. A browser cannot send a bearer token when following a
// link, so the token is also taken as the password of basic auth (any
// user name), for which the browser asks. With --web.config.file, the web
// configuration's own basic auth and TLS guard everything before this.
func uiAuth(token func() string) echo.MiddlewareFunc {
	return requireToken(token, bearerOrPassword, `Basic realm="falco-am-bridge", charset="UTF-8"`,
		"missing or wrong bearer token (browsers: any user name, the token as password)")
}

// bearerOrPassword returns the bearer token, or else the password of basic
// auth.
func bearerOrPassword(r *http.Request) (string, bool) {
	if got, ok := bearerToken(r); ok {
		return got, true
	}
	_, got, ok := r.BasicAuth()
	return strings.TrimSpace(got), ok
}

func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		return next(c)
	}
}

func (h *uiHandler) render(c echo.Context, name string, data any) error {
	var b bytes.Buffer
	if err := h.pages.ExecuteTemplate(&b, name, data); err != nil {
		return err
	}
	return c.HTMLBlob(http.StatusOK, b.Bytes())
}

type statusView struct {
	status.Status
	Now time.Time
}

func (h *uiHandler) view() (statusView, error) {
	s, err := h.ui.Status()
	return statusView{Status: s, Now: time.Now()}, err
}

func (h *uiHandler) statusPage(c echo.Context) error {
	v, err := h.view()
	if err != nil {
		return err
	}
	return h.render(c, "status.html", v)
}

func (h *uiHandler) statusFragment(c echo.Context) error {
	v, err := h.view()
	if err != nil {
		return err
	}
	return h.render(c, "live", v)
}

func (h *uiHandler) statusJSON(c echo.Context) error {
	s, err := h.ui.Status()
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s)
}

func (h *uiHandler) playground(c echo.Context) error {
	s, err := h.ui.Status()
	if err != nil {
		return err
	}
	m := h.ui.Mapping()
	return h.render(c, "playground.html", struct {
		Status  status.Status
		Mapping string
		Name    string
		Now     time.Time
	}{s, string(m.Source()), m.Name(), time.Now()})
}

var staticTypes = map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}

func (h *uiHandler) static(c echo.Context) error {
	name := c.Param("file")
	typ, ok := staticTypes[path.Ext(name)]
	if !ok || strings.ContainsAny(name, "/\\") {
		return echo.NewHTTPError(http.StatusNotFound, "not found")
	}
	b, err := uiFiles.ReadFile("ui/" + name)
	if err != nil {
		return echo.NewHTTPError(http.StatusNotFound, "not found")
	}
	return c.Blob(http.StatusOK, typ, b)
}

func (h *uiHandler) translateJSON(c echo.Context) error {
	body, release, err := readBody(c, translateMaxBytes, "the limit of /api/v1/translate", h.budget)
	defer release()
	if err != nil {
		return err
	}
	var req translate.Request
	if err := json.Unmarshal(body, &req); err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, `the body is not {"event": ..., "mapping": "..."}: `+err.Error())
	}
	if _, err := req.EventBytes(); err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, err.Error())
	}

	select {
	case h.translate <- struct{}{}:
	default:
		return echo.NewHTTPError(http.StatusTooManyRequests, "translations are running already; try again")
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), translateTimeout)
	defer cancel()
	type result struct {
		ans translate.Answer
		err error
	}
	done := make(chan result, 1)
	go func() {
		// The slot is given back when the translation ends, not when
		// the answer is sent: a run-away template in-process keeps it.
		defer func() { <-h.translate }()
		var r result
		if h.ui.Translate != nil {
			if req.Mapping == nil {
				src := string(h.ui.Mapping().Source())
				req.Mapping = &src
			}
			r.ans, r.err = h.ui.Translate(ctx, req)
		} else {
			r.ans, r.err = translate.API(req, h.ui.Mapping(), time.Now())
		}
		done <- r
	}()
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		return echo.NewHTTPError(http.StatusServiceUnavailable, fmt.Sprintf("the mapping took longer than %s on this event", translateTimeout))
	}
	if errors.Is(res.err, ErrTranslateTooLarge) {
		return echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf("the alerts are larger than %d bytes", TranslateMaxAnswer))
	}
	if errors.Is(res.err, context.DeadlineExceeded) {
		return echo.NewHTTPError(http.StatusServiceUnavailable, fmt.Sprintf("the mapping took longer than %s on this event", translateTimeout))
	}
	if res.err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, res.err.Error())
	}
	out, err := json.Marshal(res.ans)
	if err != nil {
		return err
	}
	if len(out) > TranslateMaxAnswer {
		return echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf("the alerts are larger than %d bytes", TranslateMaxAnswer))
	}
	return c.JSONBlob(http.StatusOK, out)
}

// ErrTranslateTooLarge is what UI.Translate returns when the answer is
// over TranslateMaxAnswer bytes.
var ErrTranslateTooLarge = errors.New("translation answer too large")

// ago says how long before now t was, roughly.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s ago"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + "m ago"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + "h ago"
	default:
		return strconv.Itoa(int(d.Hours()/24)) + "d ago"
	}
}
