package main

// Operations in flight per host, as vCenter limits them (a host takes a few provisioning
// operations at once): CloneVM_Task on the host its clone is placed on, power operations and
// Destroy_Task on the VM's host, each from the call's arrival to its answer (the lab answers a
// task-starting call once the work is done). GET /lab/stats reports the most at once per host
// since the last POST /lab/reset (host_ops_in_flight_max, by host name) and their maximum
// (host_ops_in_flight_max_any).

import (
	"sync"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// hostOpMethods are the calls counted as operations on a host.
var hostOpMethods = map[string]bool{
	"CloneVM_Task": true, "Destroy_Task": true,
	"PowerOnVM_Task": true, "PowerOffVM_Task": true, "ResetVM_Task": true,
}

type hostOps struct {
	mu     sync.Mutex
	now    map[types.ManagedObjectReference]int // operations in flight, by host
	max    map[types.ManagedObjectReference]int // the most at once since the last reset
	cloned map[types.ManagedObjectReference]int // of now: clones on their way (placement load)
}

func newHostOps() *hostOps {
	return &hostOps{
		now:    map[types.ManagedObjectReference]int{},
		max:    map[types.ManagedObjectReference]int{},
		cloned: map[types.ManagedObjectReference]int{},
	}
}

// begin counts one operation on host; the function it returns counts it out.
func (h *hostOps) begin(host types.ManagedObjectReference, clone bool) func() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.now[host]++
	if h.now[host] > h.max[host] {
		h.max[host] = h.now[host]
	}
	if clone {
		h.cloned[host]++
	}
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.now[host]--
		if clone {
			h.cloned[host]--
		}
	}
}

// incoming is the number of clones on their way to host (placed, not made yet).
func (h *hostOps) incoming(host types.ManagedObjectReference) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cloned[host]
}

// reset starts the maxima again from what is in flight now.
func (h *hostOps) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.max = map[types.ManagedObjectReference]int{}
	for host, n := range h.now {
		if n > 0 {
			h.max[host] = n
		}
	}
}

// maxima is the most operations at once per host (by name) and over all hosts.
func (h *hostOps) maxima() (map[string]int, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]int{}
	most := 0
	for host, n := range h.max {
		out[entityName(&host)] = n
		if n > most {
			most = n
		}
	}
	return out, most
}

// trackHostOp counts a call of hostOpMethods on its host until the function it returns is run. A
// CloneVM_Task's host is chosen here (c.cloneHost), before its latency, as vCenter places a clone
// when the task starts.
func (l *Lab) trackHostOp(c *soapCall) func() {
	if !hostOpMethods[c.name] {
		return func() {}
	}
	if c.name == "CloneVM_Task" {
		req, ok := decodeBody(c.body).(*types.CloneVM_Task)
		if !ok {
			return func() {}
		}
		host, ok := l.cloneTarget(req)
		if !ok {
			return func() {}
		}
		c.cloneHost = &host
		return l.hostOps.begin(host, true)
	}
	ref, ok := thisRef(c.body)
	if !ok {
		return func() {}
	}
	vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		return func() {}
	}
	var host *types.ManagedObjectReference
	simulator.Map.WithLock(vm, func() { host = vm.Runtime.Host })
	if host == nil {
		return func() {}
	}
	return l.hostOps.begin(*host, false)
}
