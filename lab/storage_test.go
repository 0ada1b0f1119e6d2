package main

// Storage figures: summary.storage of parents, linked clones and full copies, and the
// datastore's free space as VMs come, power on and go.

import (
	"context"
	"testing"

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
