package main

// The /lab control API: one typed handler per endpoint, each taking its request struct (decoded
// strictly from the JSON body) and returning its response struct (encoded as JSON), or an error
// that comes back as {"error": "..."} with status 400, 404, 409 or 500.

import (
	"encoding/json"
	"fmt"
	"io/ioutil"
	"net/http"
	"sort"
	"strings"
	"time"
)

// none is the request of an endpoint that takes no body.
type none struct{}

// apiError is a control endpoint's refusal: its HTTP status and message.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...interface{}) *apiError {
	return &apiError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// endpoint makes an http.HandlerFunc of a typed handler: the body (if any) is decoded into Req
// (unknown fields and wrong types are a 400 naming each), and the Resp is written as JSON.
func endpoint[Req any, Resp any](name string, handle func(Req) (Resp, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req Req
		body, err := ioutil.ReadAll(r.Body)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, errorResponse{err.Error()})
			return
		}
		if strings.TrimSpace(string(body)) != "" {
			var p problems
			decodeObject(name, body, &req, &p)
			if len(p) > 0 {
				writeJSON(w, http.StatusBadRequest, errorResponse{strings.Join(p, "; ")})
				return
			}
		}
		resp, err := handle(req)
		if err != nil {
			status := http.StatusBadRequest
			if e, ok := err.(*apiError); ok {
				status = e.status
			}
			writeJSON(w, status, errorResponse{err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, resp)
	}
}

type errorResponse struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v interface{}) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// controlHandlers is the control API, by "METHOD /lab/path".
func (l *Lab) controlHandlers() map[string]http.HandlerFunc {
	return map[string]http.HandlerFunc{
		"GET /lab":                  endpoint("info", l.describe),
		"GET /lab/info":             endpoint("info", l.describe),
		"GET /lab/stats":            endpoint("stats", l.getStats),
		"POST /lab/reset":           endpoint("reset", l.resetCounters),
		"GET /lab/config":           endpoint("config", l.getConfig),
		"POST /lab/config":          endpoint("config", l.setConfig),
		"POST /lab/expire-sessions": endpoint("expire-sessions", l.expireSessions),
		"POST /lab/pause":           endpoint("pause", l.pause),
		"GET /lab/vms":              endpoint("vms", l.listVMs),
		"POST /lab/vms":             endpoint("vms", l.addVM),
	}
}

func (l *Lab) serveControl(w http.ResponseWriter, r *http.Request) {
	route := r.Method + " " + strings.TrimSuffix(r.URL.Path, "/")
	handler, ok := l.control[route]
	if !ok {
		writeJSON(w, http.StatusNotFound, errorResponse{"no such control endpoint: " + route})
		return
	}
	handler(w, r)
}

// infoResponse is GET /lab: a short description of the lab.
type infoResponse struct {
	Datacenter string   `json:"datacenter"`
	User       string   `json:"user"`
	Endpoints  []string `json:"endpoints"`
}

func (l *Lab) describe(none) (infoResponse, error) {
	var routes []string
	for route := range l.control {
		if route != "GET /lab" && route != "GET /lab/info" {
			routes = append(routes, route)
		}
	}
	sort.Strings(routes)
	return infoResponse{Datacenter: l.spec.Datacenter, User: l.spec.User, Endpoints: routes}, nil
}

func (l *Lab) getStats(none) (statsResponse, error) {
	out := l.stats.snapshot()
	out.HostOpsMax, out.HostOpsMaxAny = l.hostOps.maxima()
	out.Sessions = l.sessions.count()
	out.ReadsWithoutSession = l.sessions.anonReadCount()
	out.Paused = l.outage.active()
	return out, nil
}

type okResponse struct {
	OK bool `json:"ok"`
}

// resetCounters is POST /lab/reset: counters, fault ordinals and the fault RNG start again.
func (l *Lab) resetCounters(none) (okResponse, error) {
	l.reset()
	return okResponse{OK: true}, nil
}

// configView is GET /lab/config, and the answer to POST /lab/config.
type configView struct {
	CloneLatencyMS         int       `json:"clone_latency_ms"`
	DestroyLatencyMS       int       `json:"destroy_latency_ms"`
	PowerOnLatencyMS       int       `json:"power_on_latency_ms"`
	CustomizationLatencyMS int       `json:"customization_latency_ms"`
	DeltaGrowthGBPerMin    float64   `json:"delta_growth_gb_per_min"`
	Faults                 FaultSpec `json:"faults"`
	Privileges             []string  `json:"privileges"` // null: every privilege
	// How reads without a live session are answered: "fault" or "missing_set" (visibility.go).
	ExpiredSessionReads string `json:"expired_session_reads"`
	// VMs (by name) the user may not see: reads answer NoPermission for them (visibility.go).
	NoPermissionVMs []string `json:"no_permission_vms"`
}

func (l *Lab) getConfig(none) (configView, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return configView{
		CloneLatencyMS: l.cloneLatency, DestroyLatencyMS: l.destroyLat, PowerOnLatencyMS: l.powerOnLat,
		CustomizationLatencyMS: l.cust.getLatency(), Faults: l.faults.withLists(),
		Privileges: l.grants.current(), DeltaGrowthGBPerMin: l.growthGBPerMin,
		ExpiredSessionReads: l.sessions.expiredReadsMode(), NoPermissionVMs: l.visible.names(),
	}, nil
}

// configUpdate is POST /lab/config: the fields given change, the others keep their values.
type configUpdate struct {
	CloneLatencyMS         *int `json:"clone_latency_ms"`
	DestroyLatencyMS       *int `json:"destroy_latency_ms"`
	PowerOnLatencyMS       *int `json:"power_on_latency_ms"`
	CustomizationLatencyMS *int `json:"customization_latency_ms"`
	// DeltaGrowthGBPerMin: how much a powered-on clone's disk grows per minute from now on.
	DeltaGrowthGBPerMin *float64 `json:"delta_growth_gb_per_min"`
	// Faults is a partial FaultSpec: the fields given replace the current ones (a seed reseeds).
	Faults json.RawMessage `json:"faults"`
	// Privileges replaces the user's privileges; null gives every privilege again.
	Privileges optionalList `json:"privileges"`
	// ExpiredSessionReads: "fault" (NotAuthenticated faults) or "missing_set" (as the simulator).
	ExpiredSessionReads *string `json:"expired_session_reads"`
	// NoPermissionVMs replaces the VMs the user may not see (by name); null or [] for none.
	NoPermissionVMs optionalList `json:"no_permission_vms"`
}

// optionalList is a list field that may be absent, null or a list (privileges, no_permission_vms).
type optionalList struct {
	set  bool
	list []string
}

func (o *optionalList) UnmarshalJSON(data []byte) error {
	o.set = true
	o.list = nil
	if strings.TrimSpace(string(data)) == "null" {
		return nil
	}
	if err := json.Unmarshal(data, &o.list); err != nil {
		return fmt.Errorf("must be a list of strings, or null")
	}
	return nil
}

func (l *Lab) setConfig(u configUpdate) (configView, error) {
	var p problems
	privilegeProblems(u.Privileges.list, &p)
	if u.DeltaGrowthGBPerMin != nil {
		growthProblems(*u.DeltaGrowthGBPerMin, &p)
	}
	if m := u.ExpiredSessionReads; m != nil && *m != expiredReadsFault && *m != expiredReadsMissingSet {
		p.add("expired_session_reads: must be %q or %q, got %q", expiredReadsFault, expiredReadsMissingSet, *m)
	}
	for _, ms := range []*int{u.CloneLatencyMS, u.DestroyLatencyMS, u.PowerOnLatencyMS, u.CustomizationLatencyMS} {
		if ms != nil && *ms < 0 {
			p.add("latencies must be 0 or more")
			break
		}
	}
	l.mu.Lock()
	faults, reseed, refuse := l.faults, false, false
	if len(u.Faults) > 0 {
		decodeObject("faults", u.Faults, &faults, &p)
		faults.validate(&p)
		var keys map[string]json.RawMessage
		_ = json.Unmarshal(u.Faults, &keys)
		_, reseed = keys["seed"]
		_, refuse = keys["refuse"]
	}
	if len(p) > 0 {
		l.mu.Unlock()
		return configView{}, p.err()
	}
	l.faults = faults
	if reseed {
		l.reseed()
	}
	if refuse {
		l.refusals.restart() // a new list of rules counts its calls from 1
	}
	if u.CloneLatencyMS != nil {
		l.cloneLatency = *u.CloneLatencyMS
	}
	if u.DestroyLatencyMS != nil {
		l.destroyLat = *u.DestroyLatencyMS
	}
	if u.PowerOnLatencyMS != nil {
		l.powerOnLat = *u.PowerOnLatencyMS
	}
	if u.DeltaGrowthGBPerMin != nil {
		l.growthGBPerMin = *u.DeltaGrowthGBPerMin
	}
	l.mu.Unlock()
	if u.DeltaGrowthGBPerMin != nil {
		l.store.setGrowth(*u.DeltaGrowthGBPerMin)
	}
	if u.CustomizationLatencyMS != nil {
		l.cust.setLatency(*u.CustomizationLatencyMS)
	}
	if u.Privileges.set {
		l.grants.set(u.Privileges.list)
	}
	if u.ExpiredSessionReads != nil {
		l.sessions.setExpiredReads(*u.ExpiredSessionReads)
	}
	if u.NoPermissionVMs.set {
		l.visible.set(u.NoPermissionVMs.list)
	}
	return l.getConfig(none{})
}

// expiredResponse is POST /lab/expire-sessions.
type expiredResponse struct {
	Expired int `json:"expired"`
}

func (l *Lab) expireSessions(none) (expiredResponse, error) {
	return expiredResponse{Expired: l.sessions.expireAll()}, nil
}

// pauseRequest is POST /lab/pause: vCenter is unreachable for Seconds (0 resumes).
type pauseRequest struct {
	Seconds *float64 `json:"seconds"`
}

type pauseResponse struct {
	Paused  bool    `json:"paused"`
	Seconds float64 `json:"seconds"`
}

func (l *Lab) pause(req pauseRequest) (pauseResponse, error) {
	if req.Seconds == nil || *req.Seconds < 0 {
		return pauseResponse{}, badRequest(`pause takes {"seconds": N} with N >= 0 (0 resumes)`)
	}
	l.outage.pauseFor(time.Duration(*req.Seconds * float64(time.Second)))
	return pauseResponse{Paused: *req.Seconds > 0, Seconds: *req.Seconds}, nil
}
