// Package ratelog keeps repeated log lines from flooding the log: a line
// that could come once per event is let through at most once per interval,
// with the count of those held back.
package ratelog

import (
	"sync"
	"time"
)

// Sampler lets one line through per interval. Its zero value lets every
// line through; set Every.
type Sampler struct {
	Every time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// New returns a Sampler for the interval every.
func New(every time.Duration) *Sampler { return &Sampler{Every: every} }

// Allow reports whether to log now and, if so, how many lines were held
// back since the last one.
func (s *Sampler) Allow(now time.Time) (ok bool, suppressed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.last.IsZero() && now.Sub(s.last) < s.Every {
		s.suppressed++
		return false, 0
	}
	n := s.suppressed
	s.last, s.suppressed = now, 0
	return true, n
}
