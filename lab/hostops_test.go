package main

// Operations in flight per host (GET /lab/stats) and the power-on latency.

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"
)

func TestOperationsInFlightAreCountedPerHost(t *testing.T) {
	tl := startLab(t, func(s *Spec) { s.CloneLatencyMS = 150 })
	c := tl.connect()
	parent := tl.parent(c, "Capture")
	snap := tl.snapshot(parent)
	hosts := map[string]types.ManagedObjectReference{}
	for _, h := range tl.built.inv.clusterHosts(t, "Training") {
		hosts[h.Name] = h.Reference()
	}
	tl.mustCall("POST", "/lab/reset", nil, nil)

	// Five clones pinned to one host and two to another, all at once; then, while they are on
	// their way, one more left to the lab to place.
	pinned := map[string]string{
		"a1": "esx-training-01", "a2": "esx-training-01", "a3": "esx-training-01",
		"a4": "esx-training-01", "a5": "esx-training-01",
		"b1": "esx-training-02", "b2": "esx-training-02",
	}
	var wg sync.WaitGroup
	start := func(name string, spec types.VirtualMachineCloneSpec) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tl.mustClone(parent, name, spec)
		}()
	}
	for name, host := range pinned {
		spec := tl.cloneSpec(&snap, linkedMove)
		ref := hosts[host]
		spec.Location.Host = &ref
		start(name, spec)
	}
	waitFor(t, 5*time.Second, "seven clones in flight", func() bool {
		return tl.stats().RequestsInFlight >= len(pinned)
	})
	start("free", tl.cloneSpec(&snap, linkedMove))
	wg.Wait()

	s := tl.stats()
	if s.HostOpsMax["esx-training-01"] != 5 || s.HostOpsMax["esx-training-02"] != 2 || s.HostOpsMaxAny != 5 {
		t.Fatalf("most clones at once per host: %v (any %d), want 5 on 01 and 2 on 02", s.HostOpsMax, s.HostOpsMaxAny)
	}
	free := tl.vms()["free"].Host
	if free == "esx-training-01" || free == "esx-training-02" {
		t.Fatalf("the unpinned clone went to %s, a host busy with clones on their way", free)
	}
	if s.HostOpsMax[free] != 1 {
		t.Fatalf("the unpinned clone is counted on the host it went to (%s): %v", free, s.HostOpsMax)
	}

	// A reset starts the maxima again; power operations count on the VM's host.
	tl.mustCall("POST", "/lab/reset", nil, nil)
	if s := tl.stats(); s.HostOpsMaxAny != 0 || len(s.HostOpsMax) != 0 {
		t.Fatalf("after a reset: %v (any %d)", s.HostOpsMax, s.HostOpsMaxAny)
	}
	ctx := context.Background()
	folder := object.NewFolder(c, tl.built.inv.vmFolders["Training"])
	vm, err := object.NewSearchIndex(c).FindChild(ctx, folder, "b1")
	if err != nil || vm == nil {
		t.Fatalf("find b1: %v", err)
	}
	task, err := object.NewVirtualMachine(c, vm.Reference()).PowerOn(ctx)
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		t.Fatalf("power on: %v", err)
	}
	if s := tl.stats(); s.HostOpsMax["esx-training-02"] != 1 || s.HostOpsMaxAny != 1 {
		t.Fatalf("a power-on counts once on its VM's host: %v", s.HostOpsMax)
	}
}

func TestPowerOnLatencyDelaysPowerOn(t *testing.T) {
	tl := startLab(t, func(s *Spec) { s.PowerOnLatencyMS = 120 })
	c := tl.connect()
	parent := tl.parent(c, "Capture")
	snap := tl.snapshot(parent)
	clone := tl.mustClone(parent, "slow", tl.cloneSpec(&snap, linkedMove))
	ctx := context.Background()
	started := time.Now()
	task, err := clone.PowerOn(ctx)
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		t.Fatalf("power on: %v", err)
	}
	if took := time.Since(started); took < 120*time.Millisecond {
		t.Fatalf("power-on took %v, less than power_on_latency_ms", took)
	}
	if state := tl.props(clone, "runtime").Runtime.PowerState; state != types.VirtualMachinePowerStatePoweredOn {
		t.Fatalf("after the latency the VM is %s", state)
	}
	var cfg configView
	tl.mustCall("POST", "/lab/config", map[string]interface{}{"power_on_latency_ms": 0}, &cfg)
	if cfg.PowerOnLatencyMS != 0 || cfg.CloneLatencyMS != 0 {
		t.Fatalf("config: %+v", cfg)
	}
	if s := tl.stats(); s.BusyMS["PowerOnVM_Task"] >= 120 {
		t.Fatalf("the injected latency is left out of busy time: %v", s.BusyMS)
	}
}
