package main

// Storage figures: summary.storage of parents, linked clones and full copies, and the
// datastore's free space as VMs come, power on and go.

import (
	"context"
	"testing"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"
)

func TestStorageFigures(t *testing.T) {
	tl := startLab(t, nil)
	c := tl.connect()
	parent := tl.parent(c, "Capture") // disk 11, used 3.34, delta 0.13 GB; 1024 MB memory
	snap := tl.snapshot(parent)
	used, delta, disk := gbBytes(3.34), gbBytes(0.13), gbBytes(11)

	want := func(name string, got *types.VirtualMachineStorageSummary, committed int64) {
		t.Helper()
		if got == nil || got.Committed != committed || got.Uncommitted != disk-committed || got.Unshared != committed {
			t.Fatalf("%s: summary.storage = %+v, want committed %d, uncommitted %d", name, got, committed, disk-committed)
		}
	}
	want("parent", tl.props(parent, "summary.storage").Summary.Storage, used)
	free := tl.datastoreFree(c)
	if free != gbBytes(480) {
		t.Fatalf("free space with the parents only: %d, want free_gb", free)
	}

	linked := tl.mustClone(parent, "linked", tl.cloneSpec(&snap, linkedMove))
	want("linked clone", tl.props(linked, "summary.storage").Summary.Storage, delta)
	perDS := tl.props(linked, "storage").Storage.PerDatastoreUsage
	if len(perDS) != 1 || perDS[0].Committed != delta || perDS[0].Datastore != tl.built.inv.datastores["TrainingDS"] {
		t.Fatalf("storage.perDatastoreUsage = %+v", perDS)
	}
	full := tl.mustClone(parent, "full", tl.cloneSpec(nil, ""))
	want("full copy", tl.props(full, "summary.storage").Summary.Storage, used)
	if got := tl.datastoreFree(c); got != free-delta-used {
		t.Fatalf("free space after a linked clone and a full copy: %d, want %d", got, free-delta-used)
	}
	if got := tl.vms()["full"].Committed; got != used {
		t.Fatalf("/lab/vms committed of the full copy: %d, want %d", got, used)
	}

	ctx := context.Background()
	task, err := linked.PowerOn(ctx)
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		t.Fatalf("power on: %v", err)
	}
	if got := tl.datastoreFree(c); got != free-delta-used-1024<<20 {
		t.Fatalf("a powered-on VM keeps a swap file of its memory: free %d, want %d", got, free-delta-used-1024<<20)
	}
	task, err = linked.PowerOff(ctx)
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		t.Fatalf("power off: %v", err)
	}
	for _, vm := range []*object.VirtualMachine{linked, full} {
		task, err := vm.Destroy(ctx)
		if err == nil {
			err = task.Wait(ctx)
		}
		if err != nil {
			t.Fatalf("destroy: %v", err)
		}
	}
	if got := tl.datastoreFree(c); got != free {
		t.Fatalf("free space after destroying the clones: %d, want it back at %d", got, free)
	}
}

// A clone's disk grows while it is powered on (delta_growth_gb_per_min), never while it is off,
// never beyond its capacity; the datastore's free space goes down with it; the control API sets
// and shows the rate.
func TestDeltaGrowsWhilePoweredOn(t *testing.T) {
	tl := startLab(t, func(s *Spec) { s.DeltaGrowthGBPerMin = 60 }) // 1 GB a second
	c := tl.connect()
	parent := tl.parent(c, "Capture") // disk 11, delta 0.13 GB
	snap := tl.snapshot(parent)
	delta, disk := gbBytes(0.13), gbBytes(11)
	on := tl.mustClone(parent, "on", tl.cloneSpec(&snap, linkedMove))
	off := tl.mustClone(parent, "off", tl.cloneSpec(&snap, linkedMove))
	committed := func(vm *object.VirtualMachine) int64 {
		return tl.props(vm, "summary.storage").Summary.Storage.Committed
	}
	ctx := context.Background()
	task, err := on.PowerOn(ctx)
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		t.Fatalf("power on: %v", err)
	}
	free := tl.datastoreFree(c)
	time.Sleep(300 * time.Millisecond)
	grown := committed(on)
	if grown < delta+gbBytes(0.25) || grown > delta+gbBytes(3) {
		t.Fatalf("after 0.3 s on at 1 GB/s: committed %d, want about %d", grown, delta+gbBytes(0.3))
	}
	if got := committed(off); got != delta {
		t.Fatalf("a powered-off clone grew: committed %d, want %d", got, delta)
	}
	if got := tl.datastoreFree(c); got >= free {
		t.Fatalf("free space did not go down as the clone grew: %d, was %d", got, free)
	}
	if got := tl.vms()["on"].Committed; got < grown {
		t.Fatalf("/lab/vms committed %d, below the %d read before", got, grown)
	}

	task, err = on.PowerOff(ctx)
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		t.Fatalf("power off: %v", err)
	}
	stopped := committed(on)
	time.Sleep(200 * time.Millisecond)
	if got := committed(on); got != stopped {
		t.Fatalf("a clone grew while off: %d, was %d", got, stopped)
	}

	// The control API: the rate as set; 0 stops growth; the disk stops at its capacity.
	var view configView
	tl.mustCall("POST", "/lab/config", map[string]interface{}{"delta_growth_gb_per_min": 6000}, &view)
	if view.DeltaGrowthGBPerMin != 6000 {
		t.Fatalf("config shows delta_growth_gb_per_min %v", view.DeltaGrowthGBPerMin)
	}
	task, err = on.PowerOn(ctx)
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		t.Fatalf("power on again: %v", err)
	}
	time.Sleep(200 * time.Millisecond) // 20 GB at 100 GB/s: more than the disk holds
	if got := committed(on); got != disk {
		t.Fatalf("committed %d beyond or below the disk's capacity %d", got, disk)
	}
	if code := tl.call("POST", "/lab/config", map[string]interface{}{"delta_growth_gb_per_min": -1}, nil); code != 400 {
		t.Fatalf("a negative growth rate: status %d, want 400", code)
	}
}
