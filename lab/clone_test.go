package main

// CloneVM_Task as vCenter does it: linked-clone disk backings, silent full copies, refusals,
// placement and identity.

import (
	"context"
	"testing"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"
)

func TestLinkedCloneHasParentBackingAndLeavesTheParentAlone(t *testing.T) {
	tl := startLab(t, nil)
	c := tl.connect()
	parent := tl.parent(c, "Capture")
	snap := tl.snapshot(parent)
	before := diskBackings(tl.props(parent, "config.hardware.device"))

	clone := tl.mustClone(parent, "cap-01", tl.cloneSpec(&snap, linkedMove))

	backings := diskBackings(tl.props(clone, "config.hardware.device"))
	if len(backings) != 1 {
		t.Fatalf("clone has %d disks, want 1", len(backings))
	}
	b := backings[0]
	if b.Parent == nil || b.Parent.FileName != tl.built.inv.parents["Capture"].diskFile {
		t.Fatalf("clone disk backing.parent = %+v, want the parent's disk %q", b.Parent, tl.built.inv.parents["Capture"].diskFile)
	}
	if b.ThinProvisioned == nil || !*b.ThinProvisioned || b.DeltaDiskFormat != "redoLogFormat" {
		t.Fatalf("linked disk: thin=%v deltaDiskFormat=%q", b.ThinProvisioned, b.DeltaDiskFormat)
	}
	after := diskBackings(tl.props(parent, "config.hardware.device"))
	if after[0].FileName != before[0].FileName || after[0].Parent != nil {
		t.Fatalf("the parent's disk changed: %q (parent %v), was %q", after[0].FileName, after[0].Parent, before[0].FileName)
	}
	entry := tl.vms()["cap-01"]
	if !entry.Linked || entry.Parent != "Capture" || entry.Snapshot != snap.Value || entry.Folder != "Training" {
		t.Fatalf("/lab/vms entry: %+v", entry)
	}
}

func TestFullCopies(t *testing.T) {
	tl := startLab(t, nil)
	c := tl.connect()
	parent := tl.parent(c, "Capture")
	snap := tl.snapshot(parent)
	diskKey := vmDisks(tl.props(parent, "config.hardware.device").Config.Hardware.Device)[0].Key
	perDisk := tl.cloneSpec(&snap, linkedMove)
	perDisk.Location.Disk = []types.VirtualMachineRelocateSpecDiskLocator{{
		DiskId:       diskKey,
		Datastore:    tl.built.inv.datastores["TrainingDS"],
		DiskMoveType: string(types.VirtualMachineRelocateDiskMoveOptionsMoveAllDiskBackingsAndDisallowSharing),
	}}
	cases := map[string]types.VirtualMachineCloneSpec{
		"no-snapshot":      tl.cloneSpec(nil, linkedMove),
		"other-move-type":  tl.cloneSpec(&snap, string(types.VirtualMachineRelocateDiskMoveOptionsMoveAllDiskBackingsAndDisallowSharing)),
		"per-disk-locator": perDisk,
	}
	for name, spec := range cases {
		clone := tl.mustClone(parent, name, spec)
		if b := diskBackings(tl.props(clone, "config.hardware.device")); b[0].Parent != nil {
			t.Errorf("%s: a full copy has backing.parent %+v", name, b[0].Parent)
		}
		if entry := tl.vms()[name]; entry.Linked || entry.Snapshot != "" {
			t.Errorf("%s: /lab/vms says linked=%v snapshot=%q", name, entry.Linked, entry.Snapshot)
		}
	}
}

func TestDuplicateNameAndWrongSnapshotAreRefused(t *testing.T) {
	tl := startLab(t, nil)
	c := tl.connect()
	capture, packaging := tl.parent(c, "Capture"), tl.parent(c, "Packaging")
	snap := tl.snapshot(capture)
	tl.mustClone(capture, "cap-01", tl.cloneSpec(&snap, linkedMove))

	_, err := tl.clone(capture, "cap-01", tl.cloneSpec(&snap, linkedMove))
	if faultName(err) != "DuplicateName" {
		t.Fatalf("same name again: %v (%s), want DuplicateName", err, faultName(err))
	}
	_, err = tl.clone(packaging, "pkg-01", tl.cloneSpec(&snap, linkedMove))
	if faultName(err) != "InvalidArgument" {
		t.Fatalf("a snapshot of another VM: %v (%s), want InvalidArgument", err, faultName(err))
	}
	if _, made := tl.vms()["pkg-01"]; made {
		t.Fatal("a refused clone was made")
	}
}

func TestClonesArePlacedAndGetAFreshIdentity(t *testing.T) {
	tl := startLab(t, nil)
	c := tl.connect()
	parent := tl.parent(c, "Capture")
	snap := tl.snapshot(parent)

	hosts := map[string]bool{}
	uuids := map[string]bool{tl.props(parent, "config").Config.InstanceUuid: true}
	for _, name := range []string{"a", "b", "c"} {
		spec := tl.cloneSpec(&snap, linkedMove)
		spec.Config = &types.VirtualMachineConfigSpec{Annotation: "made by " + name}
		clone := tl.mustClone(parent, name, spec)
		cfg := tl.props(clone, "config").Config
		if uuids[cfg.InstanceUuid] {
			t.Fatalf("%s: instanceUuid %s is not fresh", name, cfg.InstanceUuid)
		}
		uuids[cfg.InstanceUuid] = true
		if cfg.Annotation != "made by "+name {
			t.Fatalf("%s: notes %q", name, cfg.Annotation)
		}
		hosts[tl.vms()[name].Host] = true
	}
	if len(hosts) != 3 {
		t.Fatalf("three clones on %d hosts, want the least loaded each time: %v", len(hosts), hosts)
	}

	spec := tl.cloneSpec(&snap, linkedMove)
	var target types.ManagedObjectReference
	for _, h := range tl.built.inv.clusterHosts(t, "Training") {
		if h.Name == "esx-training-07" {
			target = h.Reference()
		}
	}
	spec.Location.Host = &target
	tl.mustClone(parent, "pinned", spec)
	if host := tl.vms()["pinned"].Host; host != "esx-training-07" {
		t.Fatalf("location.host is esx-training-07, the clone is on %s", host)
	}
}

// clusterHosts are the hosts of a cluster, with their names.
func (inv *inventory) clusterHosts(t *testing.T, cluster string) []namedRef {
	t.Helper()
	var out []namedRef
	cr := object.NewClusterComputeResource(inv.client, inv.clusters[cluster])
	hosts, err := cr.Hosts(context.Background())
	if err != nil {
		t.Fatalf("hosts of %s: %v", cluster, err)
	}
	for _, h := range hosts {
		name, err := h.ObjectName(context.Background())
		if err != nil {
			t.Fatalf("host name: %v", err)
		}
		out = append(out, namedRef{Name: name, Ref: h.Reference()})
	}
	return out
}

type namedRef struct {
	Name string
	Ref  types.ManagedObjectReference
}

func (n namedRef) Reference() types.ManagedObjectReference { return n.Ref }
