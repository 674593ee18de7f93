package alertmanager

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/common/model"

	"github.com/falco-am-bridge/falco-am-bridge/pkg/alert"
)

// bigAlert returns an alert of about size bytes of annotations.
func bigAlert(i, size int) *alert.Alert {
	a := testAlert("alertname", "Big", "n", fmt.Sprint(i))
	a.Annotations = model.LabelSet{"description": model.LabelValue(strings.Repeat("x", size))}
	return a
}

// TestQueueIsBoundedInBytes: alerts near the annotation cap fill a
// byte-bounded queue long before its alert capacity; the oldest go first,
// each counted as queue_full, and the bytes held stay under the bound.
func TestQueueIsBoundedInBytes(t *testing.T) {
	const maxBytes = 100 << 10
	q := newQueue(10000)
	q.maxBytes = maxBytes
	var dropped []*entry
	for i := range 1000 {
		_, d := push1(q, bigAlert(i, 4000), nil)
		dropped = append(dropped, d...)
		if b := q.size(); b > maxBytes {
			t.Fatalf("after %d alerts the queue holds %d bytes, over %d", i+1, b, maxBytes)
		}
	}
	n := q.len()
	if n < 20 || n > 25 {
		t.Fatalf("%d alerts of 4 KB queued in 100 KiB", n)
	}
	if len(dropped) != 1000-n {
		t.Fatalf("%d dropped, want %d", len(dropped), 1000-n)
	}
	for i, e := range dropped {
		if want := model.LabelValue(fmt.Sprint(i)); e.sent().Labels["n"] != want {
			t.Fatalf("drop %d is alert %s, want %s: the oldest go first", i, e.sent().Labels["n"], want)
		}
	}
	batch, _ := q.take(1000, testAlert().StartsAt)
	if len(batch) != n {
		t.Fatalf("took %d", len(batch))
	}
	q.finish(batch, func(*entry) bool { return true })
	if q.size() != 0 {
		t.Fatalf("an empty queue holds %d bytes", q.size())
	}
}

// TestMergeLetsGoOfMergedRecords: a storm of one alert coalesces into one
// entry, and that entry holds only the newest alert's Ack; the records of
// the alerts merged away are not needed any more (the newest stands for
// them), so durable storage can trim them.
func TestMergeLetsGoOfMergedRecords(t *testing.T) {
	q := newQueue(10)
	acks := make([]*countingAck, 100)
	for i := range acks {
		acks[i] = &countingAck{}
		a := testAlert("alertname", "Storm")
		a.Annotations = model.LabelSet{"serial": model.LabelValue(fmt.Sprint(i))}
		push1(q, a, acks[i])
	}
	if q.len() != 1 {
		t.Fatalf("queue length %d", q.len())
	}
	for i, a := range acks[:99] {
		if a.count() != 1 {
			t.Fatalf("ack of merged alert %d: Done called %d times, want 1", i, a.count())
		}
	}
	if acks[99].count() != 0 {
		t.Fatal("the newest alert's ack was let go while it waits")
	}
}
