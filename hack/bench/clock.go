package main

import (
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// deliveryClock stands between the bridge and Alertmanager and notes when
// Alertmanager first and last accepted a POST: the delivery times to the
// request, without scraping the bridge's /metrics for them. A scrape of a
// bridge that tracks 10,000 sensors (every distinct host of a scenario is
// one) costs it and this tool CPU that Alertmanager, on the same cores,
// needs: timed from scrapes every 100 ms, a drain read 0.65× of
// Alertmanager alone; timed here, with scrapes every second, 0.9×.
//
// Until forward names Alertmanager, it answers 502, as it does when
// Alertmanager is down: the bridge's address for Alertmanager is this
// clock's, which no other process can take while Alertmanager is not
// started yet (an address picked early and left unbound could be).
type deliveryClock struct {
	URL         string
	srv         *http.Server
	mu          sync.Mutex
	first, last time.Time
	proxy       atomic.Pointer[httputil.ReverseProxy] // nil until forward
}

func startDeliveryClock() (*deliveryClock, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c := &deliveryClock{URL: "http://" + ln.Addr().String()}
	c.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := c.proxy.Load()
		if p == nil {
			http.Error(w, "Alertmanager is not started", http.StatusBadGateway)
			return
		}
		p.ServeHTTP(w, r)
	})}
	go func() {
		if err := c.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Printf("delivery clock: %v", err)
		}
	}()
	return c, nil
}

// forward sends what the bridge posts on to the Alertmanager at target.
func (c *deliveryClock) forward(target string) error {
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.Transport = &http.Transport{MaxIdleConnsPerHost: 64}
	proxy.ErrorLog = log.New(io.Discard, "", 0) // Alertmanager down: the bridge sees 502 and retries
	proxy.ModifyResponse = func(resp *http.Response) error {
		if resp.StatusCode/100 == 2 {
			now := time.Now()
			c.mu.Lock()
			if c.first.IsZero() {
				c.first = now
			}
			c.last = now
			c.mu.Unlock()
		}
		return nil
	}
	c.proxy.Store(proxy)
	return nil
}

// times are when Alertmanager first and last accepted a POST; zero before.
func (c *deliveryClock) times() (first, last time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.first, c.last
}

func (c *deliveryClock) Close() { c.srv.Close() }
