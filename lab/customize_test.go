package main

// Guest customization and DRS groups, through the hooks on CloneVM_Task, PowerOnVM_Task and
// Destroy_Task.

import (
	"context"
	"testing"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

func TestCloneCustomizationIsPendingUntilPowerOn(t *testing.T) {
	tl := startLab(t, func(s *Spec) {
		s.CustomizationSpecs = []CustomizationSpecSpec{{Name: "win", Kind: "sysprep"}}
		s.Faults.CustomizationFailNames = []string{"cap-02"}
	})
	ctx := context.Background()
	c := tl.connect()
	item, err := object.NewCustomizationSpecManager(c).GetCustomizationSpec(ctx, "win")
	if err != nil {
		t.Fatalf("GetCustomizationSpec: %v", err)
	}
	parent := tl.parent(c, "Capture")
	snap := tl.snapshot(parent)
	for _, name := range []string{"cap-01", "cap-02"} {
		spec := tl.cloneSpec(&snap, linkedMove)
		spec.Customization = &item.Spec
		vm := tl.mustClone(parent, name, spec)
		if state := tl.vms()[name].Customization; state != "pending" {
			t.Fatalf("%s after the clone: customization %q, want pending", name, state)
		}
		task, err := vm.PowerOn(ctx)
		if err == nil {
			err = task.Wait(ctx)
		}
		if err != nil {
			t.Fatalf("power on %s: %v", name, err)
		}
	}
	vms := tl.vms()
	if vms["cap-01"].Customization != "succeeded" || vms["cap-01"].GuestHostname != "cap-01" {
		t.Fatalf("cap-01 after power-on: %+v", vms["cap-01"])
	}
	if vms["cap-02"].Customization != "failed" || vms["cap-02"].GuestHostname == "cap-02" {
		t.Fatalf("cap-02 (customization_fail_names) after power-on: %+v", vms["cap-02"])
	}

	long := item.Spec
	sysprep := *long.Identity.(*types.CustomizationSysprep)
	sysprep.UserData.ComputerName = &types.CustomizationFixedName{Name: "a-name-too-long-for-netbios"}
	long.Identity = &sysprep
	spec := tl.cloneSpec(&snap, linkedMove)
	spec.Customization = &long
	if _, err := tl.clone(parent, "cap-03", spec); faultName(err) != "InvalidArgument" {
		t.Fatalf("a 27-character computer name: %v, want InvalidArgument", err)
	}
}

func TestADestroyedVMLeavesItsDRSGroups(t *testing.T) {
	tl := startLab(t, nil)
	ctx := context.Background()
	c := tl.connect()
	parent := tl.parent(c, "Capture")
	a := tl.mustClone(parent, "a", tl.cloneSpec(nil, ""))
	b := tl.mustClone(parent, "b", tl.cloneSpec(nil, ""))
	cluster := object.NewClusterComputeResource(c, tl.built.inv.clusters["Training"])
	group := &types.ClusterVmGroup{ClusterGroupInfo: types.ClusterGroupInfo{Name: "cap-vms"},
		Vm: []types.ManagedObjectReference{a.Reference(), b.Reference()}}
	task, err := cluster.Reconfigure(ctx, &types.ClusterConfigSpecEx{GroupSpec: []types.ClusterGroupSpec{{
		ArrayUpdateSpec: types.ArrayUpdateSpec{Operation: types.ArrayUpdateOperationAdd}, Info: group}}}, true)
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		t.Fatalf("add a DRS VM group: %v", err)
	}
	task, err = a.Destroy(ctx)
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		t.Fatalf("destroy: %v", err)
	}
	var cr mo.ClusterComputeResource
	if err := cluster.Properties(ctx, cluster.Reference(), []string{"configurationEx"}, &cr); err != nil {
		t.Fatalf("read configurationEx: %v", err)
	}
	groups := cr.ConfigurationEx.(*types.ClusterConfigInfoEx).Group
	if len(groups) != 1 {
		t.Fatalf("groups: %+v", groups)
	}
	if vms := groups[0].(*types.ClusterVmGroup).Vm; len(vms) != 1 || vms[0] != b.Reference() {
		t.Fatalf("the group holds %v, want only b (%v)", vms, b.Reference())
	}
}
