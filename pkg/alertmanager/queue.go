package alertmanager

import (
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/common/model"
)

// MergedAnnotation is the annotation that says how many Falco events were
// coalesced into one alert while it waited in a queue.
const MergedAnnotation = "merged_events"

// Ack counts the queues that still need an alert. Send calls Add(1) for
// each queue before putting the alert in it, and that queue calls Done once
// it is finished with the alert, however that ended: delivered, rejected,
// expired or dropped. Durable storage uses it to trim what no queue needs.
type Ack interface {
	Add(n int)
	Done()
}

// entry is one alert waiting in a queue, possibly standing for several
// events with the same labels.
type entry struct {
	alert  *Alert
	fp     model.Fingerprint
	merged int // events in this alert
	acks   []Ack
	// enc is the alert encoded for the wire, shared by the queues of
	// every Alertmanager; nil until needed after a merge.
	enc  []byte
	size int // approxSize of alert

	inflight bool // part of the request being sent
	evicted  bool // pushed out of the queue while in flight
}

func (e *entry) done() {
	for _, a := range e.acks {
		a.Done()
	}
	e.acks = nil
}

// encoded returns the alert as sent: encoded once, but for the merge
// count, which changes.
func (e *entry) encoded() []byte {
	if e.merged > 1 {
		return e.wire().encode()
	}
	if e.enc == nil {
		e.enc = e.alert.encode()
	}
	return e.enc
}

// wire returns the alert to send, with the merge count when there was one.
func (e *entry) wire() *Alert {
	if e.merged <= 1 {
		return e.alert
	}
	a := *e.alert
	a.Annotations = make(model.LabelSet, len(e.alert.Annotations)+1)
	for k, v := range e.alert.Annotations {
		a.Annotations[k] = v
	}
	a.Annotations[MergedAnnotation] = model.LabelValue(strconv.Itoa(e.merged))
	return &a
}

// approxSize estimates the memory an alert holds in a queue: its label and
// annotation strings, plus a fixed overhead for the maps, times and entry.
// It bounds queues in bytes; it need not be exact, only proportional.
func approxSize(a *Alert) int {
	const overhead, perPair = 256, 32
	n := overhead + len(a.GeneratorURL)
	for k, v := range a.Labels {
		n += perPair + len(k) + len(v)
	}
	for k, v := range a.Annotations {
		n += perPair + len(k) + len(v)
	}
	return n
}

// queue is a bounded FIFO of alerts for one Alertmanager, bounded both in
// alerts and in bytes. When full it drops the oldest. Alerts with the same labels waiting together are coalesced
// into one entry, so a storm of events from one rule costs one slot. The
// entries being sent stay in the queue, at its front, until the request is
// over: they count against the capacity, and drop-oldest can evict them.
type queue struct {
	mu       sync.Mutex
	items    []*entry // items[start:] is the queue, oldest first
	start    int
	byFP     map[model.Fingerprint]*entry // waiting entries, for coalescing
	capacity int
	maxBytes int // 0: no byte bound
	bytes    int // approxSize of every entry, those in flight included
	wake     chan struct{}
}

func newQueue(capacity int) *queue {
	return &queue{
		byFP:     make(map[model.Fingerprint]*entry),
		capacity: capacity,
		wake:     make(chan struct{}, 1),
	}
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.start
}

// size returns the bytes the queue holds, as approxSize counts them.
func (q *queue) size() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes
}

func (q *queue) full() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)-q.start >= q.capacity || (q.maxBytes > 0 && q.bytes >= q.maxBytes)
}

// setLimits changes the bounds; a smaller bound takes effect at the next
// push, which drops the oldest as usual.
func (q *queue) setLimits(capacity, maxBytes int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.capacity, q.maxBytes = capacity, maxBytes
}

// push adds alerts in their order, all under one lock and with one wake-up,
// so that the alerts of one request reach the sender together. It returns
// how many were merged into waiting ones, and the entries dropped to make
// room (not those being sent: the sender accounts for those when their
// request ends). fps holds the fingerprint of each alert, and encs, when
// not nil, its encoding.
func (q *queue) push(alerts []*Alert, fps []model.Fingerprint, encs [][]byte, ack Ack) (merged int, dropped []*entry) {
	var released []Ack
	defer releaseAll(&released)
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, a := range alerts {
		e := &entry{alert: a, fp: fps[i], merged: 1, size: approxSize(a)}
		if encs != nil {
			e.enc = encs[i]
		}
		if ack != nil {
			e.acks = []Ack{ack}
		}
		if q.addLocked(e, &dropped, &released) {
			merged++
		}
	}
	q.wakeUp()
	return merged, dropped
}

// releaseAll lets go of acks once the queue's lock is released: the last
// Done of a durable segment removes its file.
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
		c := &entry{alert: e.alert, fp: e.fp, merged: e.merged, acks: slices.Clone(e.acks), size: e.size, enc: e.enc}
		for _, a := range c.acks {
			a.Add(1)
		}
		q.addLocked(c, &dropped, &released)
	}
	q.wakeUp()
	return dropped
}

// addLocked merges e into the waiting entry with the same labels, or puts
// it at the back, dropping the oldest entries when the queue is full (in
// alerts or in bytes).
//
// A merge keeps only the acks of e, the newer alert, and puts those of the
// waiting entry in released: e's record stands for both (the same labels,
// the newest annotations), so durable storage need not keep the older
// records, and a storm of one alert does not grow the disk. What a replay
// then loses is the earlier startsAt and the merge count, never the alert.
func (q *queue) addLocked(e *entry, dropped *[]*entry, released *[]Ack) (merged bool) {
	if w, ok := q.byFP[e.fp]; ok && w.alert.Labels.Equal(e.alert.Labels) {
		w.alert = mergeAlerts(w.alert, e.alert)
		w.merged += e.merged
		w.enc = nil
		if len(e.acks) > 0 {
			*released = append(*released, w.acks...)
			w.acks = e.acks
		}
		q.bytes += e.size - w.size
		w.size = e.size
		return true
	}
	for len(q.items)-q.start > 0 && (len(q.items)-q.start >= q.capacity || (q.maxBytes > 0 && q.bytes+e.size > q.maxBytes)) {
		old := q.popFront()
		if old.inflight {
			old.evicted = true
			continue
		}
		*dropped = append(*dropped, old)
	}
	q.items = append(q.items, e)
	q.byFP[e.fp] = e
	q.bytes += e.size
	return false
}

func (q *queue) wakeUp() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// mergeAlerts returns the alert standing for both: the newest annotations,
// the earliest start and the latest end, or the newer's end if it resolves.
func mergeAlerts(old, newer *Alert) *Alert {
	m := *newer
	if old.StartsAt.Before(m.StartsAt) {
		m.StartsAt = old.StartsAt
	}
	if old.EndsAt.After(m.EndsAt) && !newer.Resolve {
		m.EndsAt = old.EndsAt
	}
	return &m
}

func (q *queue) popFront() *entry {
	e := q.items[q.start]
	q.items[q.start] = nil
	q.start++
	q.bytes -= e.size
	q.forget(e)
	q.compact()
	return e
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
	if q.byFP[e.fp] == e {
		delete(q.byFP, e.fp)
	}
}

// take marks up to max alerts at the front as in flight and returns them.
// Alerts whose endsAt has passed on the way are removed and returned apart:
// Alertmanager would store them resolved and never notify.
func (q *queue) take(max int, now time.Time) (batch, expired []*entry) {
	q.mu.Lock()
	defer q.mu.Unlock()
	w, i := q.start, q.start
	for ; i < len(q.items) && len(batch) < max; i++ {
		e := q.items[i]
		q.forget(e)
		if e.alert.expired(now) {
			expired = append(expired, e)
			q.bytes -= e.size
			continue
		}
		e.inflight = true
		q.items[w] = e
		w++
		batch = append(batch, e)
	}
	if w != i {
		n := copy(q.items[w:], q.items[i:])
		clear(q.items[w+n:])
		q.items = q.items[:w+n]
	}
	return batch, expired
}

// finish ends a request for batch. Entries for which done is true leave the
// queue; the others wait for the next attempt, in the same order.
//
// An entry that waits again while a newer one with the same labels arrived
// during the request is folded into that newer one, as a push would have
// merged it: the queue keeps one waiting entry per label set however many
// attempts fail during a storm, and the older records are let go.
func (q *queue) finish(batch []*entry, done func(*entry) bool) {
	var released []Ack
	defer releaseAll(&released)
	q.mu.Lock()
	defer q.mu.Unlock()
	// The entries of the batch that were not evicted are still the front
	// of the queue, in order: nothing is ever put before them.
	live := 0
	for _, e := range batch {
		if !e.evicted {
			live++
		}
	}
	end := q.start + live
	kept := q.start
	for r := q.start; r < end; r++ {
		e := q.items[r]
		e.inflight = false
		if done(e) {
			q.bytes -= e.size
			continue
		}
		// Waiting again: coalesce into it, or fold it into a newer
		// entry with the same labels that arrived meanwhile.
		if w, taken := q.byFP[e.fp]; taken && w.alert.Labels.Equal(e.alert.Labels) {
			w.alert = mergeAlerts(e.alert, w.alert)
			w.merged += e.merged
			if len(w.acks) > 0 {
				released = append(released, e.acks...)
			} else {
				w.acks = e.acks
			}
			e.acks = nil
			q.bytes -= e.size
			continue
		} else if !taken {
			q.byFP[e.fp] = e
		}
		q.items[kept] = e
		kept++
	}
	n := copy(q.items[kept:], q.items[end:])
	clear(q.items[kept+n:])
	q.items = q.items[:kept+n]
	q.compact()
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
