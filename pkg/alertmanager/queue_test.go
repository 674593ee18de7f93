package alertmanager

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/alert"
)

// pushN pushes an alert labelled n=<v> for each v, expecting none to merge.
func pushN(t *testing.T, q *queue, vs ...string) (dropped []*entry) {
	t.Helper()
	for _, v := range vs {
		a := testAlert("n", v)
		merged, d := push1(q, a, nil)
		if merged {
			t.Fatalf("push n=%s: merged into a waiting alert, want a new entry", v)
		}
		dropped = append(dropped, d...)
	}
	return dropped
}

// names returns the n label of each entry.
func names(es []*entry) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, string(e.sent().Labels["n"]))
	}
	return out
}

// contents returns the n label of each entry in the queue, oldest first.
func contents(q *queue) []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return names(q.items[q.start:])
}

func checkContents(t *testing.T, q *queue, want ...string) {
	t.Helper()
	if got := contents(q); !slices.Equal(got, want) {
		t.Fatalf("queue holds %v, want %v", got, want)
	}
	if got := q.len(); got != len(want) {
		t.Fatalf("len() = %d, want %d", got, len(want))
	}
}

func notDone(*entry) bool { return false }

func TestQueueDropsOldestWhenFull(t *testing.T) {
	for _, tc := range []struct {
		name        string
		capacity    int
		push        []string
		wantDropped []string
		wantQueue   []string
	}{
		{"below capacity", 3, []string{"a", "b"}, []string{}, []string{"a", "b"}},
		{"at capacity", 3, []string{"a", "b", "c"}, []string{}, []string{"a", "b", "c"}},
		{"one over", 3, []string{"a", "b", "c", "d"}, []string{"a"}, []string{"b", "c", "d"}},
		{"many over", 3, []string{"a", "b", "c", "d", "e", "f", "g"}, []string{"a", "b", "c", "d"}, []string{"e", "f", "g"}},
		{"capacity one", 1, []string{"a", "b", "c"}, []string{"a", "b"}, []string{"c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newQueue(tc.capacity)
			dropped := pushN(t, q, tc.push...)
			if got := names(dropped); !slices.Equal(got, tc.wantDropped) {
				t.Errorf("dropped %v, want %v", got, tc.wantDropped)
			}
			checkContents(t, q, tc.wantQueue...)
			if got, want := q.full(), len(tc.wantQueue) == tc.capacity; got != want {
				t.Errorf("full() = %v, want %v", got, want)
			}
		})
	}
}

func TestQueueCoalescesWaitingAlerts(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	labels := labelSet("alertname", "Shell", "namespace", "prod")
	mk := func(cmd string, start, end time.Duration) *alert.Alert {
		return &alert.Alert{
			Labels:       labels.Clone(),
			Annotations:  model.LabelSet{"cmdline": model.LabelValue(cmd)},
			StartsAt:     t0.Add(start),
			EndsAt:       t0.Add(end),
			GeneratorURL: "http://falco/" + cmd,
		}
	}
	q := newQueue(10)
	acks := []*countingAck{{}, {}, {}}
	pushes := []*alert.Alert{
		mk("first", 0, 10*time.Minute),
		mk("second", -time.Minute, 20*time.Minute), // earliest start, latest end
		mk("third", time.Minute, 15*time.Minute),   // newest annotations
	}
	for i, a := range pushes {
		merged, dropped := push1(q, a, acks[i])
		if want := i > 0; merged != want {
			t.Fatalf("push %d: merged = %v, want %v", i, merged, want)
		}
		if len(dropped) != 0 {
			t.Fatalf("push %d: dropped %d", i, len(dropped))
		}
	}
	// Another label set in between does not merge, and is not merged into.
	other := testAlert("alertname", "Other")
	if merged, _ := push1(q, other, nil); merged {
		t.Fatal("an alert with other labels was merged")
	}
	if got := q.len(); got != 2 {
		t.Fatalf("len() = %d, want 2", got)
	}

	batch, expired := q.take(10, t0)
	if len(batch) != 2 || len(expired) != 0 {
		t.Fatalf("take: %d in batch, %d expired; want 2 and 0", len(batch), len(expired))
	}
	e := batch[0]
	if e.merged != 3 {
		t.Errorf("merged = %d, want 3", e.merged)
	}
	w := e.sent()
	if got, want := w.Annotations["cmdline"], model.LabelValue("third"); got != want {
		t.Errorf("cmdline annotation = %q, want the newest %q", got, want)
	}
	if got, want := w.Annotations[alert.MergedAnnotation], model.LabelValue("3"); got != want {
		t.Errorf("%s annotation = %q, want %q", alert.MergedAnnotation, got, want)
	}
	if !w.StartsAt.Equal(t0.Add(-time.Minute)) {
		t.Errorf("startsAt = %v, want the earliest %v", w.StartsAt, t0.Add(-time.Minute))
	}
	if !w.EndsAt.Equal(t0.Add(20 * time.Minute)) {
		t.Errorf("endsAt = %v, want the latest %v", w.EndsAt, t0.Add(20*time.Minute))
	}
	if got, want := w.GeneratorURL, "http://falco/third"; got != want {
		t.Errorf("generatorURL = %q, want the newest %q", got, want)
	}
	if !w.Labels.Equal(labels) {
		t.Errorf("labels = %v, want %v", w.Labels, labels)
	}
	// The merge count must not be written into the encoding it was
	// given: Wires are shared by the queues of every Alertmanager.
	if strings.Contains(string(e.w.JSON), alert.MergedAnnotation) {
		t.Errorf("sending added %s to the queued encoding itself", alert.MergedAnnotation)
	}
	for i, a := range pushes {
		if _, ok := a.Annotations[alert.MergedAnnotation]; ok {
			t.Errorf("pushed alert %d was changed: %v", i, a.Annotations)
		}
	}

	if enc := batch[1].encoded(); &enc[0] != &batch[1].w.JSON[0] {
		t.Errorf("an alert that was not merged is sent as a copy, want its encoding itself")
	} else if _, ok := batch[1].sent().Annotations[alert.MergedAnnotation]; ok {
		t.Errorf("an alert that was not merged carries %s", alert.MergedAnnotation)
	}

	e.done()
	for i, a := range acks {
		if got := a.count(); got != 1 {
			t.Errorf("ack of push %d: Done called %d times, want 1", i, got)
		}
	}
	e.done()
	for i, a := range acks {
		if got := a.count(); got != 1 {
			t.Errorf("after a second done(): ack of push %d called %d times, want 1", i, got)
		}
	}
}

func TestQueueWireMergedAnnotationOnlyWhenMerged(t *testing.T) {
	for _, tc := range []struct {
		name        string
		annotations model.LabelSet
		merged      int
		want        model.LabelSet
	}{
		{"single", model.LabelSet{"a": "1"}, 1, model.LabelSet{"a": "1"}},
		{"single without annotations", nil, 1, nil},
		{"two", model.LabelSet{"a": "1"}, 2, model.LabelSet{"a": "1", alert.MergedAnnotation: "2"}},
		{"many without annotations", nil, 1000, model.LabelSet{alert.MergedAnnotation: "1000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &alert.Alert{Labels: labelSet("x", "y"), Annotations: tc.annotations}
			e := newEntry(alert.Encode(a))
			e.merged = tc.merged
			got := e.sent().Annotations
			if !got.Equal(tc.want) {
				t.Errorf("annotations = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestQueueDoesNotCoalesceIntoInFlight(t *testing.T) {
	q := newQueue(10)
	pushN(t, q, "a")
	batch, _ := q.take(10, time.Now())
	if got := names(batch); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("take = %v, want [a]", got)
	}
	// The same labels while a is being sent: a new entry, since the
	// request already carries a's old content.
	a2 := testAlert("n", "a")
	a2.Annotations = model.LabelSet{"v": "2"}
	if merged, _ := push1(q, a2, nil); merged {
		t.Fatal("alert merged into an entry that is in flight")
	}
	checkContents(t, q, "a", "a")
	if batch[0].merged != 1 {
		t.Fatalf("in-flight entry merged = %d, want 1", batch[0].merged)
	}

	// The request failed: the old entry is folded into the newer one,
	// whose content is the most recent, so one entry per labels waits;
	// further events go into it.
	q.finish(batch, notDone)
	checkContents(t, q, "a")
	a3 := testAlert("n", "a")
	a3.Annotations = model.LabelSet{"v": "3"}
	if merged, _ := push1(q, a3, nil); !merged {
		t.Fatal("alert not merged into a waiting entry")
	}
	q.mu.Lock()
	only := q.items[q.start]
	q.mu.Unlock()
	if only.merged != 3 {
		t.Errorf("merged count %d, want 3 (both events and the one folded in)", only.merged)
	}
	if got := only.sent().Annotations["v"]; got != "3" {
		t.Errorf("annotation v = %q, want 3", got)
	}
}

// TestFailedAttemptsDuringAStormLeaveOneEntry: every failed attempt of a
// storm's alert meets a newer entry pushed while it was in flight; the
// two are folded together when the attempt ends, so the queue holds one
// entry, holding only the newest record.
func TestFailedAttemptsDuringAStormLeaveOneEntry(t *testing.T) {
	q := newQueue(100)
	var acks []*countingAck
	push := func() {
		a := &countingAck{}
		acks = append(acks, a)
		push1(q, testAlert("n", "storm"), a)
	}
	push()
	for range 20 {
		batch, _ := q.take(10, time.Now())
		push() // while the request is out
		q.finish(batch, notDone)
		if n := q.len(); n != 1 {
			t.Fatalf("%d entries after a failed attempt, want 1", n)
		}
	}
	for i, a := range acks[:len(acks)-1] {
		if a.count() != 1 {
			t.Fatalf("record %d: Done %d times, want 1 (folded into a newer one)", i, a.count())
		}
	}
	if acks[len(acks)-1].count() != 0 {
		t.Fatal("the newest record was let go while its alert waits")
	}
}

func TestQueueCoalescesIntoRequeuedEntry(t *testing.T) {
	q := newQueue(10)
	pushN(t, q, "a", "b")
	batch, _ := q.take(1, time.Now())
	q.finish(batch, notDone)
	a := testAlert("n", "a")
	if merged, _ := push1(q, a, nil); !merged {
		t.Fatal("alert not merged into the entry put back after a failed request")
	}
	checkContents(t, q, "a", "b")
}

func TestQueueEvictsInFlightWhenFull(t *testing.T) {
	q := newQueue(3)
	pushN(t, q, "a", "b", "c")
	batch, _ := q.take(2, time.Now())
	if got := names(batch); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("take = %v, want [a b]", got)
	}
	// In-flight entries count against the capacity and go first.
	if dropped := pushN(t, q, "d"); len(dropped) != 0 {
		t.Fatalf("evicting an in-flight entry returned dropped %v; the sender accounts for it", names(dropped))
	}
	checkContents(t, q, "b", "c", "d")
	if !batch[0].evicted || batch[1].evicted {
		t.Fatalf("evicted flags a=%v b=%v, want true false", batch[0].evicted, batch[1].evicted)
	}
	// Once the in-flight ones are gone, waiting entries are dropped and
	// returned.
	if dropped := pushN(t, q, "e", "f"); !slices.Equal(names(dropped), []string{"c"}) {
		t.Fatalf("dropped %v, want [c]", names(dropped))
	}
	checkContents(t, q, "d", "e", "f")
	if !batch[1].evicted {
		t.Fatal("b not marked evicted")
	}

	// The request ends: evicted entries do not come back.
	q.finish(batch, notDone)
	checkContents(t, q, "d", "e", "f")
}

func TestQueueFinishPartlyEvicted(t *testing.T) {
	for _, tc := range []struct {
		name string
		done func(*entry) bool
		want []string
	}{
		{"none done", notDone, []string{"b", "c", "d", "e"}},
		{"one done", func(e *entry) bool { return e.sent().Labels["n"] == "c" }, []string{"b", "d", "e"}},
		// finish must decide only about the entries of the batch
		// that are still there, not about those behind them.
		{"all done", func(*entry) bool { return true }, []string{"d", "e"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newQueue(4)
			pushN(t, q, "a", "b", "c", "d")
			batch, _ := q.take(3, time.Now())
			pushN(t, q, "e") // evicts a
			checkContents(t, q, "b", "c", "d", "e")
			q.finish(batch, tc.done)
			checkContents(t, q, tc.want...)
			for _, e := range batch {
				if e.inflight && !e.evicted {
					t.Errorf("entry %s still marked in flight", e.sent().Labels["n"])
				}
			}
		})
	}
}

func TestQueueTakeSkipsExpired(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	q := newQueue(10)
	for _, tc := range []struct {
		n      string
		endsAt time.Time
	}{
		{"a", now.Add(-time.Second)}, // ended
		{"b", now.Add(time.Hour)},
		{"c", now},                       // ends now: resolved on arrival
		{"d", now.Add(time.Millisecond)}, // times go on the wire to the millisecond
		{"e", now.Add(-time.Hour)},       // beyond the batch: stays
		{"f", now.Add(time.Hour)},
	} {
		a := testAlert("n", tc.n)
		a.EndsAt = tc.endsAt
		push1(q, a, nil)
	}
	batch, expired := q.take(2, now)
	if got, want := names(batch), []string{"b", "d"}; !slices.Equal(got, want) {
		t.Errorf("batch %v, want %v", got, want)
	}
	if got, want := names(expired), []string{"a", "c"}; !slices.Equal(got, want) {
		t.Errorf("expired %v, want %v", got, want)
	}
	checkContents(t, q, "b", "d", "e", "f")
	for _, e := range batch {
		if !e.inflight {
			t.Errorf("%s not marked in flight", e.sent().Labels["n"])
		}
	}
	// Expired entries are no longer known for coalescing.
	a := testAlert("n", "a")
	if merged, _ := push1(q, a, nil); merged {
		t.Error("alert merged into an expired entry")
	}
	q.finish(batch, notDone)
	checkContents(t, q, "b", "d", "e", "f", "a")

	batch, expired = q.take(10, now)
	if got, want := names(batch), []string{"b", "d", "f", "a"}; !slices.Equal(got, want) {
		t.Errorf("second batch %v, want %v", got, want)
	}
	if got, want := names(expired), []string{"e"}; !slices.Equal(got, want) {
		t.Errorf("second expired %v, want %v", got, want)
	}
}

func TestQueueTakeAllExpired(t *testing.T) {
	now := time.Now()
	q := newQueue(10)
	for _, n := range []string{"a", "b"} {
		a := testAlert("n", n)
		a.EndsAt = now.Add(-time.Minute)
		push1(q, a, nil)
	}
	batch, expired := q.take(10, now)
	if len(batch) != 0 || !slices.Equal(names(expired), []string{"a", "b"}) {
		t.Fatalf("take = %v, expired %v; want none and [a b]", names(batch), names(expired))
	}
	checkContents(t, q)
}

func TestQueueFinishKeepsOrder(t *testing.T) {
	for _, tc := range []struct {
		name string
		done []string
		want []string
	}{
		{"none done", nil, []string{"a", "b", "c", "d", "e", "f"}},
		{"all done", []string{"a", "b", "c"}, []string{"d", "e", "f"}},
		{"first done", []string{"a"}, []string{"b", "c", "d", "e", "f"}},
		{"middle done", []string{"b"}, []string{"a", "c", "d", "e", "f"}},
		{"last done", []string{"c"}, []string{"a", "b", "d", "e", "f"}},
		{"ends done", []string{"a", "c"}, []string{"b", "d", "e", "f"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newQueue(10)
			pushN(t, q, "a", "b", "c", "d", "e")
			batch, _ := q.take(3, time.Now())
			pushN(t, q, "f") // arrives during the request
			q.finish(batch, func(e *entry) bool { return slices.Contains(tc.done, string(e.sent().Labels["n"])) })
			checkContents(t, q, tc.want...)
			batch, _ = q.take(10, time.Now())
			if got := names(batch); !slices.Equal(got, tc.want) {
				t.Errorf("next take = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestQueueDrain(t *testing.T) {
	q := newQueue(10)
	pushN(t, q, "a", "b", "c")
	left := q.drain()
	if got := names(left); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("drain = %v, want [a b c]", got)
	}
	checkContents(t, q)
	a := testAlert("n", "a")
	if merged, _ := push1(q, a, nil); merged {
		t.Fatal("merged into a drained entry")
	}
	checkContents(t, q, "a")
}

// TestQueueModel runs random pushes, takes and finishes against a plain
// slice that does what the queue promises, to catch slips in the index
// arithmetic of take, finish and compact.
func TestQueueModel(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 42))
			capacity := 1 + rng.IntN(8)
			q := newQueue(capacity)
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			var (
				ref      []*entry // the queue, oldest first
				inflight []*entry // the batch being sent, nil when none
				serial   int
			)
			waiting := func(e *entry) bool { return !slices.Contains(inflight, e) }
			for op := range 3000 {
				switch r := rng.IntN(10); {
				case r < 6: // push
					serial++
					a := &alert.Alert{
						Labels:      labelSet("n", strconv.Itoa(rng.IntN(4))),
						Annotations: serialAnnotation(serial),
						StartsAt:    now,
						EndsAt:      now.Add(time.Duration(rng.IntN(20)-5) * time.Minute),
					}
					var candidates []*entry
					for _, e := range ref {
						if waiting(e) && e.sent().Labels.Equal(a.Labels) {
							candidates = append(candidates, e)
						}
					}
					merged, dropped := push1(q, a, nil)
					if merged {
						var into *entry
						for _, e := range candidates {
							if e.sent().Annotations["serial"] == a.Annotations["serial"] {
								into = e
							}
						}
						if into == nil {
							t.Fatalf("op %d: push merged into no waiting entry with the same labels (candidates %d)", op, len(candidates))
						}
						break
					}
					var wantDropped []*entry
					for len(ref) >= capacity {
						old := ref[0]
						ref = ref[1:]
						if slices.Contains(inflight, old) {
							if !old.evicted {
								t.Fatalf("op %d: in-flight entry pushed out but not marked evicted", op)
							}
							continue
						}
						wantDropped = append(wantDropped, old)
					}
					if !slices.Equal(dropped, wantDropped) {
						t.Fatalf("op %d: push dropped %d entries, want %d", op, len(dropped), len(wantDropped))
					}
					q.mu.Lock()
					ref = append(ref, q.items[len(q.items)-1])
					q.mu.Unlock()
				case r < 8 && inflight == nil: // take
					now = now.Add(time.Duration(rng.IntN(3)) * time.Minute)
					max := 1 + rng.IntN(4)
					var wantBatch, wantExpired, rest []*entry
					for i, e := range ref {
						if len(wantBatch) == max {
							rest = append(rest, ref[i:]...)
							break
						}
						if !e.sent().EndsAt.After(now) {
							wantExpired = append(wantExpired, e)
							continue
						}
						wantBatch = append(wantBatch, e)
						rest = append(rest, e)
					}
					batch, expired := q.take(max, now)
					if !slices.Equal(batch, wantBatch) || !slices.Equal(expired, wantExpired) {
						t.Fatalf("op %d: take(%d) = %d, %d expired; want %d, %d", op, max, len(batch), len(expired), len(wantBatch), len(wantExpired))
					}
					ref = rest
					if len(batch) > 0 {
						inflight = batch
					}
				case inflight != nil: // finish
					done := map[*entry]bool{}
					for _, e := range inflight {
						done[e] = rng.IntN(2) == 0
					}
					// Asked about an entry outside the batch, say done: a
					// finish that strays beyond the batch removes it.
					// An entry that waits again is folded into a
					// waiting entry with the same labels, if any.
					folded := map[*entry]bool{}
					for _, e := range inflight {
						if done[e] || e.evicted {
							continue
						}
						for _, w := range ref {
							if !slices.Contains(inflight, w) && w.sent().Labels.Equal(e.sent().Labels) {
								folded[e] = true
							}
						}
					}
					q.finish(inflight, func(e *entry) bool { d, ok := done[e]; return d || !ok })
					ref = slices.DeleteFunc(ref, func(e *entry) bool { return done[e] || folded[e] })
					inflight = nil
				}
				q.mu.Lock()
				got := slices.Clone(q.items[q.start:])
				q.mu.Unlock()
				if !slices.Equal(got, ref) {
					t.Fatalf("op %d: queue holds %d entries, the model %d, or in another order", op, len(got), len(ref))
				}
				if len(got) > capacity {
					t.Fatalf("op %d: %d entries over capacity %d", op, len(got), capacity)
				}
			}
		})
	}
}

func serialAnnotation(serial int) model.LabelSet {
	return model.LabelSet{"serial": model.LabelValue(strconv.Itoa(serial))}
}

// push1 pushes one alert, as Manager.Send does.
func push1(q *queue, a *alert.Alert, ack Ack) (merged bool, dropped []*entry) {
	e := newEntry(alert.Encode(a))
	if ack != nil {
		e.acks = []Ack{ack}
	}
	n, dropped := q.push([]*entry{e})
	return n > 0, dropped
}
