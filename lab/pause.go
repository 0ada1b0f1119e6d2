package main

// Pause: vCenter unreachable for a while (POST /lab/pause). Every SOAP request that arrives, or
// whose answer is ready, in that time has its connection closed with no answer; the control API
// keeps working.

import (
	"net/http"
	"sync"
	"time"
)

type outage struct {
	mu    sync.Mutex
	until time.Time
}

// pauseFor makes the lab unreachable for d from now (0 or less: reachable again).
func (o *outage) pauseFor(d time.Duration) {
	o.mu.Lock()
	o.until = time.Now().Add(d)
	o.mu.Unlock()
}

func (o *outage) active() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return time.Now().Before(o.until)
}

// within tells whether the lab is paused at now or was less than d before it.
func (o *outage) within(now time.Time, d time.Duration) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return now.Before(o.until.Add(d))
}

// dropWhilePaused drops the connection, and counts it, if the lab is paused now.
func (l *Lab) dropWhilePaused(w http.ResponseWriter) bool {
	if !l.outage.active() {
		return false
	}
	l.stats.countDropped()
	dropConnection(w)
	return true
}
