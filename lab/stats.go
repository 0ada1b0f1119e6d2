package main

// Counters of the SOAP calls the lab answers (GET /lab/stats, zeroed by POST /lab/reset).

import (
	"bytes"
	"sync"
	"time"
)

type counters struct {
	mu         sync.Mutex
	requests   map[string]int           // by method
	busy       map[string]time.Duration // server-side time by method, injected latency excluded
	cloneWait  time.Duration            // time CloneVM_Task bodies queued for the clone lock
	total      int
	cloneCalls int
	taskReads  int // RetrievePropertiesEx calls that read vim.Task properties
	// CloneVM_Task requests being answered now, and the most at once since the last reset.
	cloneInFlight, cloneInFlightMax int
	// SOAP requests being answered now, blocking waits (WaitForUpdates[Ex]) excepted: 0 means
	// the lab is idle (a killed client's last calls have finished their work).
	inFlight int
	injected int // CloneVM_Task calls failed on purpose
	dropped  int // SOAP requests dropped while paused
}

func newCounters() *counters {
	return &counters{requests: map[string]int{}, busy: map[string]time.Duration{}}
}

// isBlocking tells the methods that wait for changes (not counted in requests_in_flight).
func isBlocking(method string) bool {
	return method == "WaitForUpdatesEx" || method == "WaitForUpdates"
}

// begin counts a call as it arrives; the function it returns counts it out when it is answered,
// adding its busy time (less c.idle, the latency and lock waits the lab put in on purpose).
func (s *counters) begin(c *soapCall) (end func()) {
	started := time.Now()
	blocking, clone := isBlocking(c.name), c.name == "CloneVM_Task"
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total++
	if c.name != "" {
		s.requests[c.name]++
	}
	if !blocking {
		s.inFlight++
	}
	if clone {
		s.cloneCalls++
		s.cloneInFlight++
		if s.cloneInFlight > s.cloneInFlightMax {
			s.cloneInFlightMax = s.cloneInFlight
		}
	}
	if c.name == "RetrievePropertiesEx" && bytes.Contains(c.body, []byte("<type>Task</type>")) {
		s.taskReads++ // a read of tasks' own state: waiting, not reading the inventory
	}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if c.name != "" {
			s.busy[c.name] += time.Since(started) - c.idle
		}
		if !blocking {
			s.inFlight--
		}
		if clone {
			s.cloneInFlight--
		}
	}
}

func (s *counters) addCloneWait(d time.Duration) {
	s.mu.Lock()
	s.cloneWait += d
	s.mu.Unlock()
}

func (s *counters) countInjected() {
	s.mu.Lock()
	s.injected++
	s.mu.Unlock()
}

func (s *counters) countDropped() {
	s.mu.Lock()
	s.dropped++
	s.mu.Unlock()
}

func (s *counters) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = map[string]int{}
	s.busy = map[string]time.Duration{}
	s.cloneWait = 0
	s.total, s.cloneCalls, s.injected, s.dropped, s.taskReads = 0, 0, 0, 0, 0
	s.cloneInFlightMax = s.cloneInFlight
}

// statsResponse is GET /lab/stats (docs/lab-spec.md, "Control endpoints").
type statsResponse struct {
	Requests         map[string]int     `json:"requests"`
	BusyMS           map[string]float64 `json:"busy_ms"`
	CloneLockWaitMS  float64            `json:"clone_lock_wait_ms"`
	Total            int                `json:"total"`
	CloneCalls       int                `json:"clone_calls"`
	TaskReads        int                `json:"task_reads"`
	CloneInFlightMax int                `json:"clone_calls_in_flight_max"`
	RequestsInFlight int                `json:"requests_in_flight"`
	Injected         int                `json:"clones_failed_injected"`
	Sessions         int                `json:"sessions"`
	Dropped          int                `json:"dropped"`
	Paused           bool               `json:"paused"`
	// The most operations at once per host (hostops.go), by host name, and over all hosts.
	HostOpsMax    map[string]int `json:"host_ops_in_flight_max"`
	HostOpsMaxAny int            `json:"host_ops_in_flight_max_any"`

	// RetrieveProperties[Ex] calls answered without a session, by the simulator
	// ("expired_session_reads": "missing_set").
	ReadsWithoutSession int `json:"reads_without_session"`
}

// snapshot is the counters as GET /lab/stats shows them (sessions and paused come from their
// own concerns).
func (s *counters) snapshot() statsResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := statsResponse{
		Requests: map[string]int{}, BusyMS: map[string]float64{}, CloneLockWaitMS: msOf(s.cloneWait),
		Total: s.total, CloneCalls: s.cloneCalls, TaskReads: s.taskReads,
		CloneInFlightMax: s.cloneInFlightMax, RequestsInFlight: s.inFlight,
		Injected: s.injected, Dropped: s.dropped,
	}
	for k, v := range s.requests {
		out.Requests[k] = v
	}
	for k, v := range s.busy {
		out.BusyMS[k] = msOf(v)
	}
	return out
}

// msOf is d in milliseconds, to 0.01 ms.
func msOf(d time.Duration) float64 {
	return float64(d.Round(10*time.Microsecond)) / float64(time.Millisecond)
}
