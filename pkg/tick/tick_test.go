package tick

import (
	"testing"
	"time"
)

func TestEvery(t *testing.T) {
	done, wake := make(chan struct{}), make(chan struct{})
	calls := make(chan struct{}, 1)
	returned := make(chan struct{})
	go func() {
		Every(done, time.Hour, wake, func() { calls <- struct{}{} })
		close(returned)
	}()
	for range 3 { // a wake calls f at once, long before the hour
		wake <- struct{}{}
		<-calls
	}
	close(done)
	<-returned
}

func TestEveryTicks(t *testing.T) {
	done := make(chan struct{})
	n := 0
	Every(done, time.Millisecond, nil, func() {
		if n++; n == 3 {
			close(done)
		}
	})
	if n != 3 {
		t.Fatalf("f called %d times, want 3", n)
	}
}
