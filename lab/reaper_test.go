package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// liveHeap is the heap the process holds after two collections: what its objects take
// (HeapAlloc) and the spans that hold them (HeapInuse).
func liveHeap() (alloc, inUse uint64) {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc, m.HeapInuse
}

// held is what a lab keeps per VM, counted: the simulator's registry (objects and their locks),
// files in the datastores' folders, and the lab's own records (storage figures, customizations).
type held struct{ Objects, Locks, Files, Figures, Customizations int }

func heldBy(t *testing.T, tl *testLab) held {
	t.Helper()
	data, err := simulator.Map.MarshalJSON()
	if err != nil {
		t.Fatalf("registry: %v", err)
	}
	var h held
	if err := json.Unmarshal(data, &h); err != nil {
		t.Fatalf("registry: %v", err)
	}
	_ = filepath.Walk(tl.built.inv.tmpDir, func(string, os.FileInfo, error) error {
		h.Files++
		return nil
	})
	l := tl.built.lab
	l.store.mu.Lock()
	h.Figures = len(l.store.figs)
	l.store.mu.Unlock()
	l.cust.mu.Lock()
	h.Customizations = len(l.cust.recs)
	l.cust.mu.Unlock()
	return h
}

// makeAndDestroy clones the parent (linked, customized), powers the clone on (the guest is
// customized) and off, and destroys it: what a deploy and strip back do to one VM.
func makeAndDestroy(t *testing.T, tl *testLab, parent *object.VirtualMachine, spec types.VirtualMachineCloneSpec, name string) {
	t.Helper()
	ctx := context.Background()
	vm := tl.mustClone(parent, name, spec)
	for i, step := range []func(context.Context) (*object.Task, error){vm.PowerOn, vm.PowerOff, vm.Destroy} {
		task, err := step(ctx)
		if err == nil {
			err = task.Wait(ctx)
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if i == 0 && spec.Customization != nil && tl.built.lab.cust.state(vm.Reference()) != "succeeded" {
			t.Fatalf("%s was not customized", name)
		}
	}
}

// A lab that made and destroyed thousands of clones is back to its size: the simulator's
// registry holds what it held before, and its heap what it held after the warm-up (before
// finished tasks were forgotten it grew by about 44 KB per clone made and destroyed, without
// bound: 2,000 clones took 88 MB more). The reaper runs as the lab runs it, every second.
func TestMakingAndDestroyingThousandsOfClonesLeavesTheLabItsSize(t *testing.T) {
	if testing.Short() {
		t.Skip("thousands of clones")
	}
	tl := startLab(t, func(s *Spec) {
		s.TaskRetentionS = 1
		s.CustomizationSpecs = []CustomizationSpecSpec{{Name: "win", Kind: "sysprep"}}
	})
	c := tl.connect()
	parent := tl.parent(c, tl.built.lab.spec.Parents[0].Name)
	snap := tl.snapshot(parent)
	spec := tl.cloneSpec(&snap, linkedMove)
	item, err := object.NewCustomizationSpecManager(c).GetCustomizationSpec(context.Background(), "win")
	if err != nil {
		t.Fatalf("GetCustomizationSpec: %v", err)
	}
	spec.Customization = &item.Spec
	reaper := tl.built.lab.reaper
	swept := func() bool { return reaper.tracked() == 0 }
	const warmUp, cycles = 200, 2000
	for i := 0; i < warmUp; i++ {
		makeAndDestroy(t, tl, parent, spec, fmt.Sprintf("soak-%05d", i))
	}
	waitFor(t, 10*time.Second, "the warm-up's tasks to be forgotten", swept)
	before := heldBy(t, tl)
	allocBefore, inUseBefore := liveHeap()
	for i := warmUp; i < warmUp+cycles; i++ {
		makeAndDestroy(t, tl, parent, spec, fmt.Sprintf("soak-%05d", i))
	}
	waitFor(t, 10*time.Second, "the tasks to be forgotten", swept)
	after := heldBy(t, tl)
	allocAfter, inUseAfter := liveHeap()
	grew := float64(allocAfter) - float64(allocBefore)
	t.Logf("%d clones made and destroyed: held %+v -> %+v, heap objects %d -> %d KB "+
		"(%.3f KB per clone), heap spans %d -> %d KB", cycles, before, after,
		allocBefore>>10, allocAfter>>10, grew/1024/cycles, inUseBefore>>10, inUseAfter>>10)
	if after != before {
		t.Errorf("the lab holds %+v, %+v before", after, before)
	}
	if grew > 512<<10 {
		t.Errorf("heap objects grew by %.0f KB over %d clones (from %d KB)", grew/1024, cycles, allocBefore>>10)
	}
	if float64(inUseAfter) > 1.2*float64(inUseBefore) {
		t.Errorf("heap spans grew from %d to %d KB over %d clones", inUseBefore>>10, inUseAfter>>10, cycles)
	}
}

// A task stays readable for task_retention_s after it finished, then reads as gone; while the lab
// is paused, and for the retention after, nothing is forgotten.
func TestFinishedTasksAreForgottenAfterTheirRetention(t *testing.T) {
	tl := startLab(t, func(s *Spec) { s.TaskRetentionS = 60 })
	reaper := tl.built.lab.reaper
	reaper.stopSweeping()
	c := tl.connect()
	ctx := context.Background()
	parent := tl.parent(c, tl.built.lab.spec.Parents[0].Name)
	snap := tl.snapshot(parent)
	folder := object.NewFolder(c, tl.built.inv.vmFolders["Training"])
	task, err := parent.Clone(ctx, folder, "kept-a-while", tl.cloneSpec(&snap, linkedMove))
	if err != nil {
		t.Fatalf("clone: %v", err)
	}
	if _, err := task.WaitForResult(ctx, nil); err != nil {
		t.Fatalf("clone: %v", err)
	}
	read := func() error {
		var out mo.Task
		return property.DefaultCollector(c).RetrieveOne(ctx, task.Reference(), []string{"info.state"}, &out)
	}
	now := time.Now()
	if n := reaper.sweep(now.Add(59 * time.Second)); n != 0 {
		t.Fatalf("%d tasks forgotten within their retention", n)
	}
	if err := read(); err != nil {
		t.Fatalf("a task finished within its retention cannot be read: %v", err)
	}
	tl.built.lab.outage.pauseFor(0) // a pause that just ended
	if n := reaper.sweep(now.Add(59 * time.Second)); n != 0 {
		t.Fatalf("%d tasks forgotten within the retention after a pause", n)
	}
	if n := reaper.sweep(now.Add(2 * time.Minute)); n == 0 {
		t.Fatal("no task forgotten after its retention")
	}
	if err := read(); faultName(err) != "ManagedObjectNotFound" {
		t.Fatalf("reading a forgotten task: %v, want ManagedObjectNotFound", err)
	}
	var tm mo.TaskManager
	if err := property.DefaultCollector(c).RetrieveOne(ctx, *c.ServiceContent.TaskManager, []string{"recentTask"}, &tm); err != nil {
		t.Fatalf("recentTask: %v", err)
	}
	for _, ref := range tm.RecentTask {
		if ref == task.Reference() {
			t.Fatal("a forgotten task is still in TaskManager.recentTask")
		}
	}
	if vm := tl.vms()["kept-a-while"]; vm.Moref == "" {
		t.Fatal("forgetting its task removed the clone")
	}
}
