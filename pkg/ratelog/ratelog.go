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

// Keyed is a Sampler per key, counting items as well as lines: a line per
// key and interval goes through, saying how many lines and items were held
// back for that key since the last one. Keys must be few (reasons, status
// codes), never per-event values. Its zero value needs Every set.
type Keyed struct {
	Every time.Duration

	mu   sync.Mutex
	keys map[string]*keyed
}

type keyed struct {
	last         time.Time
	lines, items int
}

// NewKeyed returns a Keyed for the interval every.
func NewKeyed(every time.Duration) *Keyed { return &Keyed{Every: every} }

// Allow reports whether to log a line about n items for key now and, if
// so, how many lines and items were held back for key since its last one.
func (k *Keyed) Allow(key string, now time.Time, n int) (ok bool, heldLines, heldItems int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.keys == nil {
		k.keys = map[string]*keyed{}
	}
	s := k.keys[key]
	if s == nil {
		s = &keyed{}
		k.keys[key] = s
	}
	if !s.last.IsZero() && now.Sub(s.last) < k.Every {
		s.lines++
		s.items += n
		return false, 0, 0
	}
	heldLines, heldItems = s.lines, s.items
	s.last, s.lines, s.items = now, 0, 0
	return true, heldLines, heldItems
}
