package main

// The lab: the HTTP handler in front of the simulator, and the settings its concerns share.
// Each concern has its own file:
//
//	routing.go     SOAP routing: the path of every call, and the per-method hooks
//	soap.go        SOAP plumbing: envelopes, faults, handing a call to the simulator
//	sessions.go    the session gate (NotAuthenticated without a live session)
//	visibility.go  what the user may not see (NoPermission VMs, expired reads as the simulator)
//	stats.go       request counters, busy time, requests in flight (GET /lab/stats)
//	hostops.go     operations in flight per host (clones, power, destroy)
//	pause.go       vCenter unreachable for a while (POST /lab/pause)
//	clone.go       CloneVM_Task as vCenter does it (linked clones, duplicate names, ...)
//	faults.go      injected latency and faults (fail_nth, fail_fraction, full_copy_nth)
//	stepfaults.go  the steps after a clone refused (faults.refuse), vCenter lost after a clone
//	storage.go     storage figures of VMs and datastores
//	drs.go         clone placement and DRS groups
//	privileges.go  answers to privilege queries from the spec
//	customize.go   guest customization
//	reaper.go      finished tasks forgotten after task_retention_s (memory stays flat)
//	control.go     the typed /lab control API; vms.go: GET and POST /lab/vms
//
// The spec is read by spec.go and decode.go, the inventory built by build.go and setup.go.

import (
	"math/rand"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Lab is the HTTP handler in front of the simulator's ServeMux.
type Lab struct {
	mux     *http.ServeMux // the simulator's own handlers
	inv     *inventory
	spec    *Spec
	hooks   map[string][]methodHook     // by SOAP method (routing.go)
	control map[string]http.HandlerFunc // by "METHOD /lab/path" (control.go)

	mu             sync.Mutex // guards the settings below (POST /lab/config changes them)
	cloneLatency   int
	destroyLat     int
	powerOnLat     int
	growthGBPerMin float64 // delta_growth_gb_per_min, as set (storage.go applies it)
	faults         FaultSpec
	rng            *rand.Rand // draws fail_fraction failures
	cloneOrdinal   int        // CloneVM_Task calls since start or the last reset (fail_nth, full_copy_nth)

	cloneMu sync.Mutex // serialises the body of CloneVM_Task (not its latency)

	refusals refusals // each faults.refuse rule's call ordinals (stepfaults.go)

	stats    *counters
	sessions *sessionGate
	visible  *visibility
	outage   *outage
	store    *storageFigures
	cust     *customizer
	grants   *grants
	hostOps  *hostOps
	reaper   *taskReaper
}

func newLab(spec *Spec, inv *inventory, mux *http.ServeMux) *Lab {
	l := &Lab{
		mux:            mux,
		inv:            inv,
		spec:           spec,
		cloneLatency:   spec.CloneLatencyMS,
		destroyLat:     spec.DestroyLatencyMS,
		powerOnLat:     spec.PowerOnLatencyMS,
		growthGBPerMin: spec.DeltaGrowthGBPerMin,
		faults:         spec.Faults,
		rng:            rand.New(rand.NewSource(spec.Faults.Seed)),
		stats:          newCounters(),
		sessions:       newSessionGate(),
		visible:        newVisibility(),
		outage:         &outage{},
		store:          newStorageFigures(inv, spec.DeltaGrowthGBPerMin),
		cust:           newCustomizer(spec),
		grants:         newGrants(spec.User, spec.Privileges),
		hostOps:        newHostOps(),
	}
	l.reaper = newTaskReaper(time.Duration(spec.TaskRetentionS*float64(time.Second)), l.outage)
	l.reaper.start()
	l.registerHooks()
	l.control = l.controlHandlers()
	l.store.apply()
	return l
}

func (l *Lab) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/lab" || strings.HasPrefix(r.URL.Path, "/lab/") {
		l.serveControl(w, r)
		return
	}
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/sdk") {
		l.mux.ServeHTTP(w, r)
		return
	}
	l.serveSOAP(w, r)
}

// sleep waits the injected latency ms() and returns how long it slept.
func (l *Lab) sleep(ms func() int) time.Duration {
	l.mu.Lock()
	d := ms()
	l.mu.Unlock()
	if d <= 0 {
		return 0
	}
	started := time.Now()
	time.Sleep(time.Duration(d) * time.Millisecond)
	return time.Since(started)
}

// reset zeroes the counters and the fault ordinals and reseeds the fault RNG (POST /lab/reset).
func (l *Lab) reset() {
	l.stats.reset()
	l.sessions.resetCounts()
	l.hostOps.reset()
	l.mu.Lock()
	l.cloneOrdinal = 0
	l.reseed()
	l.mu.Unlock()
	l.refusals.restart()
	l.cust.reset()
}

// reseed restarts the fail_fraction random numbers from faults.seed (l.mu held).
func (l *Lab) reseed() {
	l.rng = rand.New(rand.NewSource(l.faults.Seed))
}
