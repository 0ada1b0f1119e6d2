package main

// Pause: vCenter unreachable for a while; the control API keeps answering.

import (
	"context"
	"net/http"
	"testing"

	"github.com/vmware/govmomi/vim25/methods"
)

func TestPauseDropsSOAPConnectionsUntilResumed(t *testing.T) {
	tl := startLab(t, nil)
	ctx := context.Background()
	c := tl.connect()

	var paused pauseResponse
	tl.mustCall("POST", "/lab/pause", map[string]interface{}{"seconds": 30}, &paused)
	if !paused.Paused {
		t.Fatalf("pause answer: %+v", paused)
	}
	if _, err := methods.GetCurrentTime(ctx, c); err == nil || faultName(err) != "" {
		t.Fatalf("a call while paused: %v, want a dropped connection", err)
	}
	if s := tl.stats(); !s.Paused || s.Dropped != 1 {
		t.Fatalf("stats while paused: paused=%v dropped=%d", s.Paused, s.Dropped)
	}
	tl.mustCall("POST", "/lab/pause", map[string]interface{}{"seconds": 0}, nil)
	if _, err := methods.GetCurrentTime(ctx, c); err != nil {
		t.Fatalf("after resuming: %v", err)
	}
	if s := tl.stats(); s.Paused {
		t.Fatal("still paused after pause 0")
	}
	for _, bad := range []interface{}{map[string]interface{}{}, map[string]interface{}{"seconds": -1}} {
		if status := tl.call("POST", "/lab/pause", bad, nil); status != http.StatusBadRequest {
			t.Fatalf("pause %v: status %d, want 400", bad, status)
		}
	}
}
