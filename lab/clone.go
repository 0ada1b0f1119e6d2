package main

// CloneVM_Task as vCenter does it, on top of the simulator's: latency and injected faults first
// (faults.go), then vCenter's refusals (duplicate name, a snapshot of another VM, a customization
// spec it would refuse), then the simulator's clone, fixed up: linked disks (backing.parent) when
// asked for with a snapshot and createNewChildDiskBacking, a fresh identity, the Notes, placement
// (drs.go) and storage figures (storage.go). The source VM is left exactly as it was.

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"time"

	"github.com/google/uuid"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// cloneHook answers every CloneVM_Task (the simulator is called from within).
func (l *Lab) cloneHook(c *soapCall, w http.ResponseWriter) (bool, func(*httptest.ResponseRecorder)) {
	c.idle += l.handleClone(w, c)
	return true, nil
}

// handleClone answers a CloneVM_Task; it returns the time not spent working on it (the injected
// latency and the wait for cloneMu), which the counters leave out of busy_ms.
func (l *Lab) handleClone(w http.ResponseWriter, c *soapCall) (idle time.Duration) {
	req, ok := decodeBody(c.body).(*types.CloneVM_Task)
	if !ok {
		copyRecorded(w, l.forward(c.r, c.body))
		return 0
	}
	idle = l.sleep(func() int { return l.cloneLatency })
	idle += l.lockClones()
	defer l.cloneMu.Unlock()

	draw := l.drawCloneFaults()
	src, ok := simulator.Map.Get(req.This).(*simulator.VirtualMachine)
	if !ok {
		copyRecorded(w, l.forward(c.r, c.body)) // the simulator answers ManagedObjectNotFound
		return idle
	}
	if draw.fail {
		l.stats.countInjected()
		l.failTask(w, src, req, newFault(draw.fault, req, src, firstDiskFile(src)))
		return idle
	}
	folder, ok := simulator.Map.Get(req.Folder).(*simulator.Folder)
	if !ok {
		copyRecorded(w, l.forward(c.r, c.body))
		return idle
	}
	if fault := l.refuseClone(req, src, folder); fault != nil {
		l.failTask(w, src, req, fault)
		return idle
	}
	rec, clone := l.simulatorClone(c, req, src, folder)
	if clone != nil {
		l.fixClone(req, src, clone, draw.fullCopy, c.cloneHost)
		l.applyCloneCustomization(req, clone)
		if draw.outage {
			c.afterReply = l.outageAfterReply()
		}
	}
	l.store.apply()
	copyRecorded(w, rec)
	return idle
}

// lockClones takes cloneMu (one clone at a time, after its latency) and returns the wait.
func (l *Lab) lockClones() time.Duration {
	queued := time.Now()
	l.cloneMu.Lock()
	waited := time.Since(queued)
	l.stats.addCloneWait(waited)
	return waited
}

// refuseClone returns the fault vCenter fails the call with before cloning, or nil.
func (l *Lab) refuseClone(req *types.CloneVM_Task, src *simulator.VirtualMachine, folder *simulator.Folder) types.BaseMethodFault {
	if existing := childNamed(folder, req.Name); existing != nil {
		return &types.DuplicateName{Name: req.Name, Object: existing.Reference()}
	}
	if req.Spec.Snapshot != nil {
		snap, ok := simulator.Map.Get(*req.Spec.Snapshot).(*simulator.VirtualMachineSnapshot)
		if !ok || snap.Vm != req.This {
			return &types.InvalidArgument{InvalidProperty: "spec.snapshot"}
		}
	}
	return l.checkCloneCustomization(req, src)
}

// childNamed is the entity called name in folder, or nil.
func childNamed(folder *simulator.Folder, name string) mo.Entity {
	var found mo.Entity
	simulator.Map.WithLock(folder, func() { found = simulator.Map.FindByName(name, folder.ChildEntity) })
	return found
}

// simulatorClone lets the simulator clone src and returns its answer and the clone (nil if none).
func (l *Lab) simulatorClone(c *soapCall, req *types.CloneVM_Task, src *simulator.VirtualMachine,
	folder *simulator.Folder) (*httptest.ResponseRecorder, *simulator.VirtualMachine) {
	// The simulator's CloneVM_Task edits the source's device objects in place (disk file name,
	// keys...). Give it deep copies to chew on and put the originals back afterwards.
	var orig []types.BaseVirtualDevice
	simulator.Map.WithLock(src, func() {
		orig = src.Config.Hardware.Device
		src.Config.Hardware.Device = deepCopy(reflect.ValueOf(orig)).Interface().([]types.BaseVirtualDevice)
	})
	rec := l.forward(c.r, c.body)
	simulator.Map.WithLock(src, func() { src.Config.Hardware.Device = orig })
	clone, ok := childNamed(folder, req.Name).(*simulator.VirtualMachine)
	if !ok || rec.Code != http.StatusOK {
		return rec, nil
	}
	return rec, clone
}

// fixClone makes the simulator's clone look like what vCenter would have made.
func (l *Lab) fixClone(req *types.CloneVM_Task, src, clone *simulator.VirtualMachine, fullCopy bool, host *types.ManagedObjectReference) {
	var srcDevices []types.BaseVirtualDevice
	simulator.Map.WithLock(src, func() { srcDevices = src.Config.Hardware.Device })
	var capacity int64
	var allLinked bool
	simulator.Map.WithLock(clone, func() {
		capacity, allLinked = linkDisks(req, vmDisks(srcDevices), vmDisks(clone.Config.Hardware.Device), fullCopy)
		simulator.Map.Update(clone, identityChanges(req))
	})
	l.placeClone(req, clone, host)
	snapshot := ""
	if allLinked && req.Spec.Snapshot != nil {
		snapshot = req.Spec.Snapshot.Value
	}
	l.store.recordClone(src.Self, clone, capacity, allLinked, snapshot)
}

// linkDisks gives each disk of the clone a backing.parent pointing at the source's disk when a
// linked clone was asked for (a snapshot and createNewChildDiskBacking, no per-disk locator saying
// otherwise, not a forced full copy), and removes it otherwise. It returns the clone's provisioned
// bytes and whether every disk is linked.
func linkDisks(req *types.CloneVM_Task, srcDisks, cloneDisks []*types.VirtualDisk, fullCopy bool) (int64, bool) {
	createChild := string(types.VirtualMachineRelocateDiskMoveOptionsCreateNewChildDiskBacking)
	linkedReq := req.Spec.Snapshot != nil && req.Spec.Location.DiskMoveType == createChild && !fullCopy
	allLinked := len(cloneDisks) > 0
	var capacity int64
	for i, cd := range cloneDisks {
		capacity += cd.CapacityInBytes
		if cd.CapacityInBytes == 0 {
			capacity += cd.CapacityInKB * 1024
		}
		b, ok := cd.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
		if !ok || i >= len(srcDisks) {
			allLinked = false
			continue
		}
		linked := linkedReq
		for _, loc := range req.Spec.Location.Disk {
			if loc.DiskId == srcDisks[i].Key && loc.DiskMoveType != createChild {
				linked = false // a per-disk locator overrides diskMoveType: full copy
			}
		}
		pb, ok := srcDisks[i].Backing.(*types.VirtualDiskFlatVer2BackingInfo)
		if !linked || !ok {
			b.Parent = nil
			allLinked = false
			continue
		}
		b.Parent = &types.VirtualDiskFlatVer2BackingInfo{
			VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{FileName: pb.FileName, Datastore: pb.Datastore},
			DiskMode:                     pb.DiskMode,
			ThinProvisioned:              types.NewBool(true),
			Uuid:                         pb.Uuid,
		}
		b.ThinProvisioned = types.NewBool(true)
		b.DeltaDiskFormat = "redoLogFormat"
	}
	return capacity, allLinked
}

// identityChanges gives the clone a fresh identity, as vCenter does (or the one the spec asks
// for), and its Notes from the clone spec (the simulator drops them).
func identityChanges(req *types.CloneVM_Task) []types.PropertyChange {
	changes := []types.PropertyChange{}
	if req.Spec.Config == nil || req.Spec.Config.InstanceUuid == "" {
		id := uuid.New().String()
		changes = append(changes,
			types.PropertyChange{Name: "config.instanceUuid", Val: id},
			types.PropertyChange{Name: "summary.config.instanceUuid", Val: id})
	}
	if req.Spec.Config == nil || req.Spec.Config.Uuid == "" {
		id := uuid.New().String()
		changes = append(changes,
			types.PropertyChange{Name: "config.uuid", Val: id},
			types.PropertyChange{Name: "summary.config.uuid", Val: id})
	}
	if req.Spec.Config != nil && req.Spec.Config.Annotation != "" {
		changes = append(changes,
			types.PropertyChange{Name: "config.annotation", Val: req.Spec.Config.Annotation},
			types.PropertyChange{Name: "summary.config.annotation", Val: req.Spec.Config.Annotation})
	}
	return changes
}

func vmDisks(devices []types.BaseVirtualDevice) []*types.VirtualDisk {
	var out []*types.VirtualDisk
	for _, d := range devices {
		if vd, ok := d.(*types.VirtualDisk); ok {
			out = append(out, vd)
		}
	}
	return out
}

func firstDiskFile(vm *simulator.VirtualMachine) string {
	for _, d := range vmDisks(vm.Config.Hardware.Device) {
		if b, ok := d.Backing.(types.BaseVirtualDeviceFileBackingInfo); ok {
			return b.GetVirtualDeviceFileBackingInfo().FileName
		}
	}
	return ""
}

// deepCopy copies pointers, slices, maps and interfaces recursively (exported fields only;
// structs are first copied whole so unexported fields such as time.Time's survive).
func deepCopy(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Ptr:
		if v.IsNil() {
			return reflect.Zero(v.Type())
		}
		n := reflect.New(v.Elem().Type())
		n.Elem().Set(deepCopy(v.Elem()))
		return n
	case reflect.Interface:
		if v.IsNil() {
			return reflect.Zero(v.Type())
		}
		n := reflect.New(v.Type()).Elem()
		n.Set(deepCopy(v.Elem()))
		return n
	case reflect.Struct:
		n := reflect.New(v.Type()).Elem()
		n.Set(v)
		t := v.Type()
		for i := 0; i < v.NumField(); i++ {
			if t.Field(i).PkgPath != "" {
				continue
			}
			n.Field(i).Set(deepCopy(v.Field(i)))
		}
		return n
	case reflect.Slice:
		if v.IsNil() {
			return reflect.Zero(v.Type())
		}
		n := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := 0; i < v.Len(); i++ {
			n.Index(i).Set(deepCopy(v.Index(i)))
		}
		return n
	case reflect.Map:
		if v.IsNil() {
			return reflect.Zero(v.Type())
		}
		n := reflect.MakeMapWithSize(v.Type(), v.Len())
		for _, k := range v.MapKeys() {
			n.SetMapIndex(k, deepCopy(v.MapIndex(k)))
		}
		return n
	default:
		return v
	}
}
