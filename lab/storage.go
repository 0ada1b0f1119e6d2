package main

// Storage figures: the simulator has none worth the name, so the lab keeps, for every VM it knows,
// what vCenter would show in summary.storage and storage.perDatastoreUsage (docs/lab-spec.md,
// "Storage figures"), and each datastore's freeSpace: free_gb less what the VMs made since commit,
// less the swap files of powered-on VMs. They are re-imposed after every call that may change them.
//
// A clone's disk grows while it is powered on (delta_growth_gb_per_min; 0 by default), as a
// Windows clone's delta does once it boots and is used: the growth is added whenever the figures
// are re-imposed, which, while it is on, is also before every property read.

import (
	"sync"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// figures are the storage numbers the lab keeps for one VM.
type figures struct {
	capacity int64 // provisioned disk bytes
	used     int64 // bytes a full copy of this VM commits
	delta    int64 // bytes a linked clone of this VM commits
	linked   bool
	isParent bool // counted in the spec's free_gb already
	ds       types.ManagedObjectReference
	snapshot string    // moref of the snapshot a linked clone was made from ("" otherwise)
	grown    int64     // bytes its disk grew while powered on (delta_growth_gb_per_min)
	on       bool      // powered on when the figures were last re-imposed
	tick     time.Time // when the figures were last re-imposed (growth is counted from there)
}

func (f *figures) committed() int64 {
	base := f.used
	if f.linked {
		base = f.delta
	}
	if base+f.grown > f.capacity && f.grown > 0 {
		return max64(base, f.capacity) // a disk never holds more than its capacity
	}
	return base + f.grown
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// storageFigures holds the figures of every VM the lab knows (VMs destroyed are dropped).
type storageFigures struct {
	inv    *inventory
	mu     sync.Mutex
	figs   map[types.ManagedObjectReference]*figures
	growth int64 // bytes a powered-on clone's disk grows per minute (delta_growth_gb_per_min)
}

// newStorageFigures starts with the parents of the spec.
func newStorageFigures(inv *inventory, growthGBPerMin float64) *storageFigures {
	s := &storageFigures{inv: inv, figs: map[types.ManagedObjectReference]*figures{},
		growth: gbBytes(growthGBPerMin)}
	for _, p := range inv.parents {
		s.figs[p.ref] = &figures{
			capacity: gbBytes(p.spec.DiskGB),
			used:     gbBytes(p.spec.UsedGB),
			delta:    gbBytes(p.spec.DeltaGB),
			isParent: true,
			ds:       p.datastore,
		}
	}
	return s
}

func (s *storageFigures) add(ref types.ManagedObjectReference, fig *figures) {
	s.mu.Lock()
	s.figs[ref] = fig
	s.mu.Unlock()
}

// recordClone gives a clone of src the figures of its kind: a linked clone commits the source's
// delta, a full copy what the source really holds (at most the clone's capacity).
func (s *storageFigures) recordClone(src types.ManagedObjectReference, clone *simulator.VirtualMachine,
	capacity int64, linked bool, snapshot string) {
	fig := &figures{capacity: capacity, linked: linked, snapshot: snapshot, ds: s.datastoreOf(clone),
		tick: time.Now()}
	s.mu.Lock()
	defer s.mu.Unlock()
	if srcFig := s.figs[src]; srcFig != nil {
		fig.used, fig.delta = srcFig.used, srcFig.delta
		if fig.used > capacity {
			fig.used = capacity
		}
	}
	s.figs[clone.Self] = fig
}

// snapshotOf is the moref of the snapshot the VM was linked-cloned from ("" otherwise).
func (s *storageFigures) snapshotOf(ref types.ManagedObjectReference) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fig := s.figs[ref]; fig != nil {
		return fig.snapshot
	}
	return ""
}

func (s *storageFigures) datastoreOf(vm *simulator.VirtualMachine) types.ManagedObjectReference {
	p := object.DatastorePath{}
	if p.FromString(vm.Config.Files.VmPathName) {
		if ref, ok := s.inv.datastores[p.Datastore]; ok {
			return ref
		}
	}
	if len(vm.Datastore) > 0 {
		return vm.Datastore[0]
	}
	return types.ManagedObjectReference{}
}

// growing says whether powered-on clones grow (reads then re-impose the figures first).
func (s *storageFigures) growing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.growth > 0
}

// setGrowth changes delta_growth_gb_per_min; the growth so far is counted at the old rate.
func (s *storageFigures) setGrowth(gbPerMin float64) {
	s.apply()
	s.mu.Lock()
	s.growth = gbBytes(gbPerMin)
	s.mu.Unlock()
}

// grow adds to a clone's disk what it grew since the last tick, if it was on all that time
// (a power-on or power-off re-imposes the figures, so each interval is either on or off).
func (s *storageFigures) grow(vm *simulator.VirtualMachine, fig *figures, now time.Time) {
	if fig.isParent {
		return
	}
	if fig.on && s.growth > 0 && !fig.tick.IsZero() {
		fig.grown += int64(float64(s.growth) * now.Sub(fig.tick).Minutes())
	}
	simulator.Map.WithLock(vm, func() {
		fig.on = vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn
	})
	fig.tick = now
}

// apply re-imposes the storage figures of every VM and the datastores' free space.
func (s *storageFigures) apply() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	used := map[types.ManagedObjectReference]int64{}
	for ref, fig := range s.figs {
		vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine)
		if !ok {
			delete(s.figs, ref)
			continue
		}
		s.grow(vm, fig, now)
		if !fig.isParent {
			used[fig.ds] += fig.committed()
		}
		used[fig.ds] += applyVMFigures(vm, fig, now)
	}
	for ref, base := range s.inv.dsBaseFree {
		if ds, ok := simulator.Map.Get(ref).(*simulator.Datastore); ok {
			applyFreeSpace(ds, base-used[ref], s.inv.dsCapacity[ref])
		}
	}
}

// applyVMFigures sets the VM's summary.storage and storage from fig; it returns the bytes of its
// swap file (a powered-on VM's .vswp), which its datastore also loses.
func applyVMFigures(vm *simulator.VirtualMachine, fig *figures, now time.Time) (swap int64) {
	committed := fig.committed()
	uncommitted := fig.capacity - committed
	if uncommitted < 0 {
		uncommitted = 0
	}
	simulator.Map.WithLock(vm, func() {
		swap = swapBytes(vm)
		s := vm.Summary.Storage
		if s != nil && s.Committed == committed && s.Uncommitted == uncommitted && s.Unshared == committed {
			return
		}
		simulator.Map.Update(vm, []types.PropertyChange{
			{Name: "summary.storage", Val: &types.VirtualMachineStorageSummary{
				Committed: committed, Uncommitted: uncommitted, Unshared: committed, Timestamp: now,
			}},
			{Name: "storage", Val: &types.VirtualMachineStorageInfo{
				PerDatastoreUsage: []types.VirtualMachineUsageOnDatastore{{
					Datastore: fig.ds, Committed: committed, Uncommitted: uncommitted, Unshared: committed,
				}},
				Timestamp: now,
			}},
		})
	})
	return swap
}

// applyFreeSpace sets a datastore's free space (never below 0) and capacity.
func applyFreeSpace(ds *simulator.Datastore, free, capacity int64) {
	if free < 0 {
		free = 0
	}
	simulator.Map.WithLock(ds, func() {
		info := ds.Info.GetDatastoreInfo()
		info.FreeSpace = free
		info.MaxFileSize = free
		info.MaxVirtualDiskCapacity = capacity
		if ds.Summary.FreeSpace == free && ds.Summary.Capacity == capacity {
			return
		}
		simulator.Map.Update(ds, []types.PropertyChange{
			{Name: "summary.capacity", Val: capacity},
			{Name: "summary.freeSpace", Val: free},
		})
	})
}

// swapBytes is the .vswp file a powered-on VM keeps on its datastore (its memory size, no
// reservation in the lab).
func swapBytes(vm *simulator.VirtualMachine) int64 {
	if vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn || vm.Config == nil {
		return 0
	}
	return int64(vm.Config.Hardware.MemoryMB) << 20
}
