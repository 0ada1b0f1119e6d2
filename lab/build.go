package main

// Builds the inventory described by a Spec inside a govmomi simulator model.

import (
	"context"
	"fmt"
	"io/ioutil"
	"os"
	"path/filepath"
	"strings"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/simulator/esx"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// parentInfo remembers what the lab knows about a parent VM.
type parentInfo struct {
	spec      ParentSpec
	ref       types.ManagedObjectReference
	diskFile  string
	datastore types.ManagedObjectReference
}

// inventory is the lab's view of what it built.
type inventory struct {
	client      *vim25.Client
	dc          *object.Datacenter
	folders     *object.DatacenterFolders
	vmFolders   map[string]types.ManagedObjectReference // spec folder path -> moref
	clusters    map[string]types.ManagedObjectReference
	pools       map[string]types.ManagedObjectReference // cluster name -> root pool
	datastores  map[string]types.ManagedObjectReference
	dsBaseFree  map[types.ManagedObjectReference]int64 // free bytes with only the parents present
	dsCapacity  map[types.ManagedObjectReference]int64
	parents     map[string]*parentInfo // by name
	parentByRef map[types.ManagedObjectReference]*parentInfo
	tmpDir      string
}

func gbBytes(gb float64) int64 {
	return int64(gb*float64(gib) + 0.5)
}

func hostName(cluster string, i int) string {
	slug := strings.ToLower(strings.ReplaceAll(cluster, " ", "-"))
	return fmt.Sprintf("esx-%s-%02d", slug, i+1)
}

// buildInventory creates the spec's datacenter, clusters and hosts, datastores, VM folders,
// parents and customization specs in the simulator.
func buildInventory(ctx context.Context, client *vim25.Client, spec *Spec) (*inventory, error) {
	inv := &inventory{
		client:      client,
		vmFolders:   map[string]types.ManagedObjectReference{},
		clusters:    map[string]types.ManagedObjectReference{},
		pools:       map[string]types.ManagedObjectReference{},
		datastores:  map[string]types.ManagedObjectReference{},
		dsBaseFree:  map[types.ManagedObjectReference]int64{},
		dsCapacity:  map[types.ManagedObjectReference]int64{},
		parents:     map[string]*parentInfo{},
		parentByRef: map[types.ManagedObjectReference]*parentInfo{},
	}
	if err := inv.createDatacenter(ctx, spec.Datacenter); err != nil {
		return nil, err
	}
	hosts, err := inv.createClusters(ctx, spec.Clusters)
	if err != nil {
		return nil, err
	}
	if err := inv.createDatastores(ctx, spec.Datastores, hosts); err != nil {
		return nil, err
	}
	if err := inv.createFolders(ctx, spec.Folders); err != nil {
		return nil, err
	}
	// Parents: powered off, no snapshot, one disk (thin and persistent unless the spec says).
	for _, ps := range spec.Parents {
		p, err := createVM(ctx, inv, ps, ps.Name, inv.vmFolders[ps.Folder], nil)
		if err != nil {
			return nil, fmt.Errorf("create parent %s: %v", ps.Name, err)
		}
		inv.parents[ps.Name] = p
		inv.parentByRef[p.ref] = p
	}
	// Customization specs with one NIC mapping per parent NIC (every parent has one NIC).
	first := simulator.Map.Get(inv.parents[spec.Parents[0].Name].ref).(*simulator.VirtualMachine)
	if err := createCustomizationSpecs(ctx, client, spec.CustomizationSpecs, countNICs(first.Config.Hardware.Device)); err != nil {
		return nil, err
	}
	return inv, nil
}

// createDatacenter names the model's one datacenter and finds its folders.
func (inv *inventory) createDatacenter(ctx context.Context, name string) error {
	dc, err := find.NewFinder(inv.client, false).DefaultDatacenter(ctx)
	if err != nil {
		return fmt.Errorf("no datacenter in the model: %v", err)
	}
	if name != dc.Name() {
		task, err := dc.Rename(ctx, name)
		if err != nil {
			return err
		}
		if err := task.Wait(ctx); err != nil {
			return fmt.Errorf("rename datacenter: %v", err)
		}
		dc = object.NewDatacenter(inv.client, dc.Reference())
	}
	inv.dc = dc
	folders, err := dc.Folders(ctx)
	if err != nil {
		return err
	}
	inv.folders = folders
	inv.vmFolders[""] = folders.VmFolder.Reference()
	return nil
}

// createClusters creates the clusters and their hosts; it returns every host.
func (inv *inventory) createClusters(ctx context.Context, clusters []ClusterSpec) ([]*object.HostSystem, error) {
	var allHosts []*object.HostSystem
	for _, cs := range clusters {
		cluster, err := inv.folders.HostFolder.CreateCluster(ctx, cs.Name, types.ClusterConfigSpecEx{})
		if err != nil {
			return nil, fmt.Errorf("create cluster %s: %v", cs.Name, err)
		}
		for i := 0; i < cs.Hosts; i++ {
			task, err := cluster.AddHost(ctx, types.HostConnectSpec{HostName: hostName(cs.Name, i)}, true, nil, nil)
			if err != nil {
				return nil, err
			}
			info, err := task.WaitForResult(ctx, nil)
			if err != nil {
				return nil, fmt.Errorf("add host to %s: %v", cs.Name, err)
			}
			allHosts = append(allHosts, object.NewHostSystem(inv.client, info.Result.(types.ManagedObjectReference)))
		}
		pool, err := cluster.ResourcePool(ctx)
		if err != nil {
			return nil, err
		}
		inv.clusters[cs.Name] = cluster.Reference()
		inv.pools[cs.Name] = pool.Reference()
	}
	return allHosts, nil
}

// createDatastores creates the datastores, each one object mounted on every host.
func (inv *inventory) createDatastores(ctx context.Context, datastores []DatastoreSpec, hosts []*object.HostSystem) error {
	var err error
	inv.tmpDir, err = ioutil.TempDir("", "clones-lab-")
	if err != nil {
		return err
	}
	for _, ds := range datastores {
		dir := filepath.Join(inv.tmpDir, ds.Name)
		if err := os.MkdirAll(dir, 0700); err != nil {
			return err
		}
		var ref types.ManagedObjectReference
		for _, host := range hosts {
			dss, err := host.ConfigManager().DatastoreSystem(ctx)
			if err != nil {
				return err
			}
			d, err := dss.CreateLocalDatastore(ctx, ds.Name, dir)
			if err != nil {
				return fmt.Errorf("create datastore %s: %v", ds.Name, err)
			}
			ref = d.Reference()
		}
		inv.datastores[ds.Name] = ref
		inv.dsCapacity[ref] = gbBytes(ds.CapacityGB)
		inv.dsBaseFree[ref] = gbBytes(ds.FreeGB)
		mountEverywhere(simulator.Map.Get(ref).(*simulator.Datastore), dir, hosts)
	}
	dsFolder := simulator.Map.Get(inv.folders.DatastoreFolder.Reference()).(*simulator.Folder)
	dsFolder.ChildEntity = dedupe(dsFolder.ChildEntity)
	return nil
}

// mountEverywhere makes one Datastore object shared by every host (the simulator makes one per
// host mount).
func mountEverywhere(obj *simulator.Datastore, dir string, hosts []*object.HostSystem) {
	var mounts []types.DatastoreHostMount
	for _, host := range hosts {
		mounts = append(mounts, types.DatastoreHostMount{
			Key: host.Reference(),
			MountInfo: types.HostMountInfo{
				Path:       dir,
				AccessMode: string(types.HostMountModeReadWrite),
				Mounted:    types.NewBool(true),
				Accessible: types.NewBool(true),
			},
		})
	}
	obj.Host = mounts
	obj.Summary.Type = "VMFS"
	obj.Summary.MultipleHostAccess = types.NewBool(true)
}

// createFolders creates the VM folders ("A/B" nests).
func (inv *inventory) createFolders(ctx context.Context, paths []string) error {
	for _, path := range paths {
		parentPath := ""
		for _, part := range strings.Split(path, "/") {
			cur := part
			if parentPath != "" {
				cur = parentPath + "/" + part
			}
			if _, ok := inv.vmFolders[cur]; !ok {
				parent := object.NewFolder(inv.client, inv.vmFolders[parentPath])
				f, err := parent.CreateFolder(ctx, part)
				if err != nil {
					return fmt.Errorf("create folder %s: %v", cur, err)
				}
				inv.vmFolders[cur] = f.Reference()
			}
			parentPath = cur
		}
	}
	return nil
}

func dedupe(refs []types.ManagedObjectReference) []types.ManagedObjectReference {
	seen := map[types.ManagedObjectReference]bool{}
	var out []types.ManagedObjectReference
	for _, r := range refs {
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out
}

// createVM makes a VM shaped like a parent spec (used for parents and decoys).
func createVM(ctx context.Context, inv *inventory, ps ParentSpec, name string,
	folder types.ManagedObjectReference, host *types.ManagedObjectReference) (*parentInfo, error) {
	dsName := ps.Datastore
	config := types.VirtualMachineConfigSpec{
		Name:     name,
		GuestId:  ps.GuestID,
		NumCPUs:  int32(ps.NumCPUs),
		MemoryMB: int64(ps.MemoryMB),
		Files:    &types.VirtualMachineFileInfo{VmPathName: fmt.Sprintf("[%s]", dsName)},
	}
	devices, err := parentDevices(ps, inv.datastores[dsName], fmt.Sprintf("[%s] %s/%s.vmdk", dsName, name, name))
	if err != nil {
		return nil, err
	}
	config.DeviceChange, err = devices.ConfigSpec(types.VirtualDeviceConfigSpecOperationAdd)
	if err != nil {
		return nil, err
	}
	pool := object.NewResourcePool(inv.client, inv.pools[ps.Cluster])
	var hs *object.HostSystem
	if host != nil {
		hs = object.NewHostSystem(inv.client, *host)
	}
	task, err := object.NewFolder(inv.client, folder).CreateVM(ctx, config, pool, hs)
	if err != nil {
		return nil, err
	}
	info, err := task.WaitForResult(ctx, nil)
	if err != nil {
		return nil, err
	}
	ref := info.Result.(types.ManagedObjectReference)
	// Read back the disk file name the simulator settled on.
	vm := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	return &parentInfo{spec: ps, ref: ref, diskFile: firstDiskFile(vm), datastore: inv.datastores[dsName]}, nil
}

// parentDevices are a parent's devices: a SCSI controller, one disk (thin and persistent unless
// the spec says otherwise) and one NIC on "VM Network".
func parentDevices(ps ParentSpec, ds types.ManagedObjectReference, diskFile string) (object.VirtualDeviceList, error) {
	var devices object.VirtualDeviceList
	scsi, err := devices.CreateSCSIController("lsilogic-sas")
	if err != nil {
		return nil, err
	}
	devices = append(devices, scsi)
	disk := devices.CreateDisk(scsi.(types.BaseVirtualController), ds, diskFile)
	disk.CapacityInBytes = gbBytes(ps.DiskGB)
	disk.CapacityInKB = disk.CapacityInBytes / 1024
	if b, ok := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok {
		thin := ps.Thin == nil || *ps.Thin
		b.ThinProvisioned = types.NewBool(thin)
		if !thin {
			b.EagerlyScrub = types.NewBool(false)
		}
		b.DiskMode = ps.DiskMode
		if b.DiskMode == "" {
			b.DiskMode = string(types.VirtualDiskModePersistent)
		}
	}
	nic := esx.EthernetCard
	return append(devices, disk, &nic), nil
}

// entityName returns the name of a managed entity in the simulator's map ("" if gone).
func entityName(ref *types.ManagedObjectReference) string {
	if ref == nil {
		return ""
	}
	obj := simulator.Map.Get(*ref)
	if e, ok := obj.(mo.Entity); ok {
		return e.Entity().Name
	}
	return ""
}
