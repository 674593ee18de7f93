// Package tick runs the bridge's periodic work.
package tick

import "time"

// Every calls f every d, and at once whenever wake receives (a nil wake
// never does), until done is closed.
func Every(done <-chan struct{}, d time.Duration, wake <-chan struct{}, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		case <-wake:
		}
		f()
	}
}
