package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// load posts prepared bodies over a fixed number of keep-alive connections,
// flat out or paced to a rate of events per second.
type load struct {
	url    string
	bodies []body
	// requests and make, when make is set, stand for bodies: body i is
	// made when it is sent, for loads too big to hold in memory.
	requests int
	make     func(i int) body
	conns    int
	rate     float64 // events per second; 0 = as fast as answered
	gzip     bool
	clock    *clock // stamped with each event's send time; nil = not stamped
	// answered, when not nil, has a place per body, set when it is
	// answered 2xx.
	answered []bool
	// retry sends a body answered 503 again after its Retry-After.
	retry bool
}

// loadResult is what the senders saw.
type loadResult struct {
	Requests int
	Events   int // events in the requests sent
	Accepted int // events in requests answered 2xx
	Statuses map[int]int
	Retries  int    // 503 answers sent again (with retry)
	Errors   int    // requests without an answer
	FirstErr string // the first failure, answer or not
	Elapsed  time.Duration
}

func (l load) run(ctx context.Context) loadResult {
	var next atomic.Int64
	var mu sync.Mutex
	res := loadResult{Statuses: map[int]int{}}
	start := time.Now()
	var wg sync.WaitGroup
	for range l.conns {
		wg.Go(func() {
			r := l.sender(ctx, &next, start)
			mu.Lock()
			defer mu.Unlock()
			res.Requests += r.Requests
			res.Events += r.Events
			res.Accepted += r.Accepted
			res.Errors += r.Errors
			res.Retries += r.Retries
			for code, n := range r.Statuses {
				res.Statuses[code] += n
			}
			if res.FirstErr == "" {
				res.FirstErr = r.FirstErr
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	return res
}

// sender is one connection: it takes the next body until none are left.
func (l load) sender(ctx context.Context, next *atomic.Int64, start time.Time) loadResult {
	tr := &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	res := loadResult{Statuses: map[int]int{}}
	for ctx.Err() == nil {
		i := int(next.Add(1)) - 1
		var b body
		switch {
		case l.make != nil && i < l.requests:
			b = l.make(i)
		case l.make == nil && i < len(l.bodies):
			b = l.bodies[i]
		default:
			return res
		}
		if l.rate > 0 {
			due := start.Add(time.Duration(float64(b.first) / l.rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return res
				}
			}
		}
		if l.clock != nil {
			now := l.clock.now()
			for seq := b.first; seq < b.first+b.n; seq++ {
				l.clock.sentAt[seq].Store(now)
			}
		}
		res.Requests++
		res.Events += b.n
		ans, err := l.post(ctx, client, b)
		for l.retry && err == nil && ans.code == http.StatusServiceUnavailable {
			// As a batching client does: the same body again after
			// Retry-After.
			res.Statuses[ans.code]++
			res.Retries++
			wait, _ := strconv.Atoi(ans.retryAfter)
			select {
			case <-time.After(time.Duration(max(wait, 1)) * time.Second):
			case <-ctx.Done():
				return res
			}
			ans, err = l.post(ctx, client, b)
		}
		if err != nil {
			res.Errors++
			if res.FirstErr == "" {
				res.FirstErr = err.Error()
			}
			continue
		}
		res.Statuses[ans.code]++
		if ans.code/100 == 2 {
			res.Accepted += b.n
			if l.answered != nil {
				l.answered[i] = true
			}
		} else if res.FirstErr == "" {
			res.FirstErr = fmt.Sprintf("%s: %s", ans.status, bytes.TrimSpace(ans.msg))
		}
	}
	return res
}

// answer is what post read of a response.
type answer struct {
	code               int
	status, retryAfter string
	msg                []byte // the start of the body
}

// post sends body b once and reads the start of the answer.
func (l load) post(ctx context.Context, client *http.Client, b body) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.url, bytes.NewReader(b.data))
	if err != nil {
		panic(err) // the URL is ours
	}
	req.Header.Set("Content-Type", "application/json")
	if l.gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	_, _ = io.Copy(io.Discard, resp.Body)
	return answer{code: resp.StatusCode, status: resp.Status, retryAfter: resp.Header.Get("Retry-After"), msg: msg}, nil
}

func (r loadResult) String() string {
	return fmt.Sprintf("%d requests, %d events, %d accepted, statuses %v, %d errors", r.Requests, r.Events, r.Accepted, r.Statuses, r.Errors)
}
