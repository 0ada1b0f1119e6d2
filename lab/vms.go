package main

// GET /lab/vms (every VM as the tests see it) and POST /lab/vms (an extra VM shaped like a parent,
// e.g. an unmanaged decoy).

import (
	"context"
	"fmt"
	"net/http"
	"sort"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// vmEntry is one VM in GET /lab/vms (docs/lab-spec.md, "Control endpoints").
type vmEntry struct {
	Name          string            `json:"name"`
	Moref         string            `json:"moref"`
	Folder        string            `json:"folder"` // path under the datacenter's vm folder
	Host          string            `json:"host"`
	Cluster       string            `json:"cluster"`
	PowerState    string            `json:"power_state"`
	Linked        bool              `json:"linked"`
	Parent        string            `json:"parent"` // parent name if linked
	Committed     int64             `json:"committed"`
	IsParent      bool              `json:"is_parent"`
	Snapshots     int               `json:"snapshots"`
	Custom        map[string]string `json:"custom"` // custom attributes by name
	Notes         string            `json:"notes"`
	InstanceUUID  string            `json:"instance_uuid"`
	Disks         int               `json:"disks"`
	DiskModes     []string          `json:"disk_modes"`
	MemoryMB      int32             `json:"memory_mb"`
	GuestHostname string            `json:"guest_hostname"`
	Customization string            `json:"customization"` // pending, succeeded, failed or ""
	Snapshot      string            `json:"snapshot"`      // moref a linked clone was made from
}

// addVMRequest is POST /lab/vms: only name is required.
type addVMRequest struct {
	Name       string            `json:"name"`
	Folder     string            `json:"folder"`
	ParentLike string            `json:"parent_like"`
	Custom     map[string]string `json:"custom"`
	PowerState string            `json:"power_state"`
	Host       string            `json:"host"`
	Linked     bool              `json:"linked"`
}

func (l *Lab) listVMs(none) ([]vmEntry, error) {
	if l.store.growing() { // committed as of now
		l.store.apply()
	}
	fields := customFieldNames()
	out := []vmEntry{}
	for _, e := range simulator.Map.All("VirtualMachine") {
		if vm, ok := e.(*simulator.VirtualMachine); ok {
			out = append(out, l.vmEntry(vm, fields))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Moref < out[j].Moref
	})
	return out, nil
}

func (l *Lab) vmEntry(vm *simulator.VirtualMachine, fields map[int32]string) vmEntry {
	var out vmEntry
	simulator.Map.WithLock(vm, func() {
		_, isParent := l.inv.parentByRef[vm.Self]
		disks := vmDisks(vm.Config.Hardware.Device)
		out = vmEntry{
			Name: vm.Name, Moref: vm.Self.Value, Folder: l.folderPath(vm.Parent),
			Host: entityName(vm.Runtime.Host), Cluster: clusterOf(vm),
			PowerState: string(vm.Runtime.PowerState), Linked: isLinked(disks), Parent: l.linkedParent(disks),
			IsParent: isParent, Snapshots: countSnapshots(vm), Custom: customValues(vm, fields),
			Notes: vm.Config.Annotation, InstanceUUID: vm.Config.InstanceUuid, Disks: len(disks),
			DiskModes: diskModes(disks), MemoryMB: vm.Config.Hardware.MemoryMB,
		}
		if vm.Summary.Storage != nil {
			out.Committed = vm.Summary.Storage.Committed
		}
		if vm.Guest != nil {
			out.GuestHostname = vm.Guest.HostName
		}
	})
	out.Customization = l.cust.state(vm.Self)
	out.Snapshot = l.store.snapshotOf(vm.Self)
	return out
}

// isLinked tells whether any disk has a backing.parent.
func isLinked(disks []*types.VirtualDisk) bool {
	for _, d := range disks {
		if b, ok := d.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok && b.Parent != nil {
			return true
		}
	}
	return false
}

// linkedParent is the name of the parent VM whose disk a disk's backing.parent is ("" if none).
func (l *Lab) linkedParent(disks []*types.VirtualDisk) string {
	parent := ""
	for _, d := range disks {
		if b, ok := d.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok && b.Parent != nil {
			for name, p := range l.inv.parents {
				if p.diskFile == b.Parent.FileName {
					parent = name
				}
			}
		}
	}
	return parent
}

func diskModes(disks []*types.VirtualDisk) []string {
	modes := []string{}
	for _, d := range disks {
		if b, ok := d.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok {
			modes = append(modes, b.DiskMode)
		} else {
			modes = append(modes, "")
		}
	}
	return modes
}

func countSnapshots(vm *simulator.VirtualMachine) int {
	n := 0
	var count func([]types.VirtualMachineSnapshotTree)
	count = func(list []types.VirtualMachineSnapshotTree) {
		for _, s := range list {
			n++
			count(s.ChildSnapshotList)
		}
	}
	if vm.Snapshot != nil {
		count(vm.Snapshot.RootSnapshotList)
	}
	return n
}

func clusterOf(vm *simulator.VirtualMachine) string {
	if vm.ResourcePool != nil {
		if rp, ok := simulator.Map.Get(*vm.ResourcePool).(*simulator.ResourcePool); ok {
			return entityName(&rp.Owner)
		}
	}
	return ""
}

func customValues(vm *simulator.VirtualMachine, fields map[int32]string) map[string]string {
	custom := map[string]string{}
	for _, cv := range vm.CustomValue {
		if s, ok := cv.(*types.CustomFieldStringValue); ok {
			name := fields[s.Key]
			if name == "" {
				name = fmt.Sprint(s.Key)
			}
			custom[name] = s.Value
		}
	}
	return custom
}

func customFieldNames() map[int32]string {
	names := map[int32]string{}
	m := simulator.Map.CustomFieldsManager()
	simulator.Map.WithLock(m, func() {
		for _, f := range m.Field {
			names[f.Key] = f.Name
		}
	})
	return names
}

// folderPath returns a VM folder's path relative to the datacenter's vm folder ("" for the root).
func (l *Lab) folderPath(ref *types.ManagedObjectReference) string {
	if ref == nil {
		return ""
	}
	for path, r := range l.inv.vmFolders {
		if r == *ref {
			return path
		}
	}
	return entityName(ref)
}

// addVM creates an extra VM shaped like a parent (POST /lab/vms).
func (l *Lab) addVM(req addVMRequest) (vmEntry, error) {
	folder, like, host, err := l.resolveAddVM(&req)
	if err != nil {
		return vmEntry{}, err
	}
	ctx := context.Background()
	l.cloneMu.Lock()
	defer l.cloneMu.Unlock()
	info, err := createVM(ctx, l.inv, like.spec, req.Name, folder, host)
	if err != nil {
		return vmEntry{}, &apiError{http.StatusInternalServerError, err.Error()}
	}
	vm := simulator.Map.Get(info.ref).(*simulator.VirtualMachine)
	if req.Linked {
		linkToParent(vm, like)
	}
	if err := l.setCustomValues(ctx, info.ref, req.Custom); err != nil {
		return vmEntry{}, err
	}
	if req.PowerState == "poweredOn" {
		task, err := object.NewVirtualMachine(l.inv.client, info.ref).PowerOn(ctx)
		if err == nil {
			err = task.Wait(ctx)
		}
		if err != nil {
			return vmEntry{}, &apiError{http.StatusInternalServerError, fmt.Sprintf("power on: %v", err)}
		}
	}
	l.store.add(info.ref, &figures{
		capacity: gbBytes(like.spec.DiskGB), used: gbBytes(like.spec.UsedGB),
		delta: gbBytes(like.spec.DeltaGB), linked: req.Linked, ds: like.datastore,
	})
	l.store.apply()
	return l.vmEntry(vm, customFieldNames()), nil
}

// resolveAddVM checks a POST /lab/vms request and finds its folder, model parent and host.
func (l *Lab) resolveAddVM(req *addVMRequest) (types.ManagedObjectReference, *parentInfo, *types.ManagedObjectReference, error) {
	none := types.ManagedObjectReference{}
	if req.Name == "" {
		return none, nil, nil, badRequest("name is required")
	}
	folderRef, ok := l.inv.vmFolders[req.Folder]
	if !ok {
		return none, nil, nil, badRequest("unknown folder %q", req.Folder)
	}
	if req.ParentLike == "" {
		req.ParentLike = l.spec.Parents[0].Name
	}
	like, ok := l.inv.parents[req.ParentLike]
	if !ok {
		return none, nil, nil, badRequest("unknown parent_like %q", req.ParentLike)
	}
	if req.PowerState != "" && req.PowerState != "poweredOn" && req.PowerState != "poweredOff" {
		return none, nil, nil, badRequest("power_state must be poweredOn or poweredOff")
	}
	if childNamed(simulator.Map.Get(folderRef).(*simulator.Folder), req.Name) != nil {
		return none, nil, nil, &apiError{http.StatusConflict,
			fmt.Sprintf("a VM or folder named %q already exists in folder %q", req.Name, req.Folder)}
	}
	if req.Host == "" {
		return folderRef, like, nil, nil
	}
	for _, e := range simulator.Map.All("HostSystem") {
		if e.Entity().Name == req.Host {
			ref := e.Reference()
			return folderRef, like, &ref, nil
		}
	}
	return none, nil, nil, badRequest("unknown host %q", req.Host)
}

// linkToParent gives the VM's disks a backing.parent on the parent's disk (a linked clone made
// outside the bot).
func linkToParent(vm *simulator.VirtualMachine, like *parentInfo) {
	simulator.Map.WithLock(vm, func() {
		for _, d := range vmDisks(vm.Config.Hardware.Device) {
			if b, ok := d.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok {
				b.Parent = &types.VirtualDiskFlatVer2BackingInfo{
					VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{
						FileName: like.diskFile, Datastore: &like.datastore,
					},
					DiskMode:        string(types.VirtualDiskModePersistent),
					ThinProvisioned: types.NewBool(true),
				}
			}
		}
	})
}

// setCustomValues sets custom attributes on a VM, defining the fields that do not exist yet.
func (l *Lab) setCustomValues(ctx context.Context, ref types.ManagedObjectReference, custom map[string]string) error {
	cfm := object.NewCustomFieldsManager(l.inv.client)
	names := make([]string, 0, len(custom))
	for k := range custom {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		key, err := cfm.FindKey(ctx, name)
		if err != nil {
			def, aerr := cfm.Add(ctx, name, "VirtualMachine", nil, nil)
			if aerr != nil {
				return &apiError{http.StatusInternalServerError, fmt.Sprintf("custom field %s: %v", name, aerr)}
			}
			key = def.Key
		}
		if err := cfm.Set(ctx, ref, key, custom[name]); err != nil {
			return &apiError{http.StatusInternalServerError, fmt.Sprintf("set custom field %s: %v", name, err)}
		}
	}
	return nil
}
