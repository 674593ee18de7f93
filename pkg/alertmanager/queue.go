package alertmanager

import (
	"slices"
	"sync"
	"time"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/alert"
	"github.com/falco-am-bridge/falco-am-bridge/pkg/storage"
)

// Ack counts the queues that still need an alert, in memory mode. SendAll
// calls Add(1) for each queue before putting the alert in it, and that
// queue calls Done once it is finished with the alert, however that
// ended: delivered, rejected, expired or dropped. With a durable spool the
// spool holds the alerts instead, and no Ack is held.
type Ack interface {
	Add(n int)
	Done()
}

// entryOverhead approximates the memory an entry takes beyond its
// encoding: the entry, its slot in the queue and the index.
const entryOverhead = 160

// entry is one alert waiting in a queue, possibly standing for several
// events with the same labels.
type entry struct {
	w *alert.Wire // the newest version; shared by every queue in memory mode
	// startsAt is the earliest of the merged versions, endsAt the end
	// they add up to; they may differ from w's.
	startsAt, endsAt time.Time
	merged           int // events in this alert
	acks             []Ack
	// pos is where w was read from the spool, when durable.
	pos     storage.Position
	durable bool
	size    int

	inflight bool // part of a request being sent
	evicted  bool // pushed out of the queue while in flight
	gone     bool // left the queue when its request ended
}

func newEntry(w *alert.Wire) *entry {
	return &entry{w: w, startsAt: w.StartsAt, endsAt: w.EndsAt, merged: 1, size: len(w.JSON) + entryOverhead}
}

func (e *entry) done() {
	for _, a := range e.acks {
		a.Done()
	}
	e.acks = nil
}

// expired says whether e is not worth sending any more (see
// alert.Wire.Expired).
func (e *entry) expired(now time.Time) bool {
	return !e.w.Resolve && !e.endsAt.After(now)
}

// encoded returns the alert as sent: w's bytes, or a copy with the
// merged times and count.
func (e *entry) encoded() []byte { return e.w.With(e.startsAt, e.endsAt, e.merged) }

// combine makes keep stand for both keep and other, two versions of the
// same alert: the earliest start, the newer's end (or the later one,
// unless the newer resolves), the newer's annotations. keepIsNewer says
// which is newer. It returns the acks no longer needed.
func combine(keep, other *entry, keepIsNewer bool) (released []Ack) {
	older, newer := keep, other
	if keepIsNewer {
		older, newer = other, keep
	}
	startsAt := min(older.startsAt.UnixMilli(), newer.startsAt.UnixMilli())
	endsAt := newer.endsAt
	if older.endsAt.After(endsAt) && !newer.w.Resolve {
		endsAt = older.endsAt
	}
	keep.startsAt = time.UnixMilli(startsAt).UTC()
	keep.endsAt = endsAt
	keep.merged += other.merged
	if !keepIsNewer {
		keep.w, keep.size = other.w, other.size
		keep.pos, keep.durable = other.pos, other.durable
	}
	// The newer version's record stands for both (the same labels, the
	// newest annotations), so the older one's holders can let go.
	switch {
	case len(newer.acks) == 0:
		keep.acks = append(keep.acks, other.acks...)
	case keepIsNewer:
		released = other.acks
	default:
		released, keep.acks = keep.acks, other.acks
	}
	other.acks = nil
	return released
}

// queue holds the alerts of one Alertmanager, oldest first, bounded in
// alerts and in bytes. In memory mode it is the whole queue and drops the
// oldest when full. With a spool it is the window the sender reads the
// spool into, and it is filled only while it has room. Alerts with the
// same labels waiting together are coalesced into one entry. Entries being
// sent stay in it until their request ends, and count against its bounds;
// two versions of one alert are never in flight at once.
type queue struct {
	mu       sync.Mutex
	items    []*entry // items[start:] is the queue, in-flight entries included
	start    int
	byFP     map[uint64]*entry // waiting entries, for coalescing
	inflight map[uint64]bool   // fingerprints of the entries in flight
	capacity int
	maxBytes int // 0: no byte bound
	bytes    int // size of every entry, those in flight included
	wake     chan struct{}
}

func newQueue(capacity int) *queue {
	return &queue{
		byFP:     make(map[uint64]*entry),
		inflight: make(map[uint64]bool),
		capacity: capacity,
		wake:     make(chan struct{}, 1),
	}
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.start
}

// size returns the bytes the queue holds.
func (q *queue) size() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes
}

// full says whether the next alert would push out the oldest: the queue
// is at its capacity, or one more alert of the average size would take it
// past its byte bound.
func (q *queue) full() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := len(q.items) - q.start
	return n >= q.capacity || q.maxBytes > 0 && n > 0 && q.bytes+q.bytes/n > q.maxBytes
}

// room says whether the window has room for another alert.
func (q *queue) room() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)-q.start < q.capacity && (q.maxBytes <= 0 || q.bytes < q.maxBytes)
}

// setLimits changes the bounds; a smaller bound takes effect at the next
// push, which drops the oldest as usual.
func (q *queue) setLimits(capacity, maxBytes int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.capacity, q.maxBytes = capacity, maxBytes
}

// push adds entries in their order, all under one lock and with one
// wake-up, so that the alerts of one request reach the sender together,
// dropping the oldest when the queue is full. It returns how many were
// merged into waiting ones, and the entries dropped to make room (not
// those being sent: the sender accounts for those when their request
// ends).
func (q *queue) push(entries []*entry) (merged int, dropped []*entry) {
	var released []Ack
	defer releaseAll(&released)
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, e := range entries {
		if q.addLocked(e, true, &dropped, &released) {
			merged++
		}
	}
	q.wakeUp()
	return merged, dropped
}

// add adds one entry read from the spool; the caller checked room first,
// so nothing is dropped.
func (q *queue) add(e *entry) (merged bool) {
	var released []Ack
	defer releaseAll(&released)
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.addLocked(e, false, nil, &released)
}

// releaseAll lets go of acks once the queue's lock is released.
func releaseAll(acks *[]Ack) {
	for _, a := range *acks {
		a.Done()
	}
}

// adopt queues copies of entries taken from another queue, holding each of
// their acks once more; the caller lets go of the originals. It returns the
// entries dropped to make room.
func (q *queue) adopt(entries []*entry) (dropped []*entry) {
	var released []Ack
	defer releaseAll(&released)
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, e := range entries {
		c := &entry{w: e.w, startsAt: e.startsAt, endsAt: e.endsAt, merged: e.merged, acks: slices.Clone(e.acks), size: e.size}
		for _, a := range c.acks {
			a.Add(1)
		}
		q.addLocked(c, true, &dropped, &released)
	}
	q.wakeUp()
	return dropped
}

// addLocked merges e into the waiting entry with the same labels, or puts
// it at the back; with evict, it first drops the oldest entries while the
// queue is full (in alerts or in bytes).
func (q *queue) addLocked(e *entry, evict bool, dropped *[]*entry, released *[]Ack) (merged bool) {
	if w, ok := q.byFP[e.w.Fingerprint()]; ok && w.w.SameLabels(e.w) {
		before := w.size
		*released = append(*released, combine(w, e, false)...)
		q.bytes += w.size - before
		return true
	}
	for evict && len(q.items)-q.start > 0 && (len(q.items)-q.start >= q.capacity || (q.maxBytes > 0 && q.bytes+e.size > q.maxBytes)) {
		old := q.items[q.start]
		q.items[q.start] = nil
		q.start++
		q.bytes -= old.size
		q.forget(old)
		if old.inflight {
			old.evicted = true
			continue
		}
		*dropped = append(*dropped, old)
	}
	q.compact()
	q.items = append(q.items, e)
	q.byFP[e.w.Fingerprint()] = e
	q.bytes += e.size
	return false
}

func (q *queue) wakeUp() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// compact releases the consumed front of items once it is half of them.
func (q *queue) compact() {
	if q.start > 0 && q.start >= len(q.items)/2 {
		n := copy(q.items, q.items[q.start:])
		clear(q.items[n:])
		q.items = q.items[:n]
		q.start = 0
	}
}

func (q *queue) forget(e *entry) {
	if q.byFP[e.w.Fingerprint()] == e {
		delete(q.byFP, e.w.Fingerprint())
	}
}

// takeable says whether take would find an alert to send.
func (q *queue) takeable() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, e := range q.items[q.start:] {
		if !e.inflight && !q.inflight[e.w.Fingerprint()] {
			return true
		}
	}
	return false
}

// waiting counts the entries not in flight.
func (q *queue) waiting() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, e := range q.items[q.start:] {
		if !e.inflight {
			n++
		}
	}
	return n
}

// take marks up to max waiting alerts, oldest first, as in flight and
// returns them; an alert of which another version is in flight waits.
// Alerts whose endsAt has passed on the way are removed and returned
// apart: Alertmanager would store them resolved and never notify.
func (q *queue) take(max int, now time.Time) (batch, expired []*entry) {
	q.mu.Lock()
	defer q.mu.Unlock()
	live := q.items[q.start:]
	kept := live[:0]
	for _, e := range live {
		fp := e.w.Fingerprint()
		if e.inflight || len(batch) >= max || q.inflight[fp] {
			kept = append(kept, e)
			continue
		}
		q.forget(e)
		if e.expired(now) {
			expired = append(expired, e)
			q.bytes -= e.size
			continue
		}
		e.inflight = true
		q.inflight[fp] = true
		batch = append(batch, e)
		kept = append(kept, e)
	}
	clear(live[len(kept):])
	q.items = q.items[:q.start+len(kept)]
	return batch, expired
}

// finish ends a request for batch. Entries for which done is true leave the
// queue; the others wait for the next attempt, in their place.
//
// An entry that waits again while a newer one with the same labels arrived
// during the request is folded into that newer one, as a push would have
// merged it: the queue keeps one waiting entry per label set however many
// attempts fail during a storm.
func (q *queue) finish(batch []*entry, done func(*entry) bool) {
	var released []Ack
	defer releaseAll(&released)
	q.mu.Lock()
	defer q.mu.Unlock()
	defer q.wakeUp()
	gone := 0
	for _, e := range batch {
		fp := e.w.Fingerprint()
		delete(q.inflight, fp)
		e.inflight = false
		if e.evicted {
			continue
		}
		if done(e) {
			e.gone = true
			gone++
			q.bytes -= e.size
			continue
		}
		if w, taken := q.byFP[fp]; taken && w.w.SameLabels(e.w) {
			released = append(released, combine(w, e, true)...)
			e.gone = true
			gone++
			q.bytes -= e.size
			continue
		} else if !taken {
			q.byFP[fp] = e
		}
	}
	if gone == 0 {
		return
	}
	live := q.items[q.start:]
	kept := slices.DeleteFunc(live, func(e *entry) bool { return e.gone })
	clear(live[len(kept):])
	q.items = q.items[:q.start+len(kept)]
}

// watermark is the position in the spool before which this queue needs no
// record: the oldest position its entries hold, or read when it holds
// none (read is where its cursor reads next).
func (q *queue) watermark(read storage.Position) storage.Position {
	q.mu.Lock()
	defer q.mu.Unlock()
	low := read
	for _, e := range q.items[q.start:] {
		if e.durable && e.pos.Before(low) {
			low = e.pos
		}
	}
	return low
}

// drain removes and returns everything left.
func (q *queue) drain() []*entry {
	q.mu.Lock()
	defer q.mu.Unlock()
	left := make([]*entry, 0, len(q.items)-q.start)
	left = append(left, q.items[q.start:]...)
	q.items, q.start = nil, 0
	q.bytes = 0
	clear(q.byFP)
	return left
}
