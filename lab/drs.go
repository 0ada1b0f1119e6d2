package main

// Placement and DRS: a clone goes to spec.location.host, else to the least loaded host of its
// resource pool's cluster (the simulator leaves it on the source's host). DRS groups and rules
// themselves are the simulator's (ReconfigureComputeResource_Task); the lab only makes a destroyed
// VM leave its VM groups, as vCenter does. The rules are not enforced when placing clones.

import (
	"net/http"
	"net/http/httptest"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// placeClone puts the clone on location.host, or on the least loaded host of its pool's cluster.
func (l *Lab) placeClone(req *types.CloneVM_Task, clone *simulator.VirtualMachine) {
	var target types.ManagedObjectReference
	if req.Spec.Location.Host != nil {
		target = *req.Spec.Location.Host
	} else if host, ok := leastLoadedHost(clone); ok {
		target = host
	} else {
		return
	}
	newHost, ok := simulator.Map.Get(target).(*simulator.HostSystem)
	if !ok || clone.Runtime.Host == nil || *clone.Runtime.Host == target {
		return
	}
	if old, ok := simulator.Map.Get(*clone.Runtime.Host).(*simulator.HostSystem); ok {
		simulator.Map.RemoveReference(old, &old.Vm, clone.Self)
	}
	simulator.Map.AppendReference(newHost, &newHost.Vm, clone.Self)
	simulator.Map.WithLock(clone, func() {
		simulator.Map.Update(clone, []types.PropertyChange{
			{Name: "runtime.host", Val: target},
			{Name: "summary.runtime.host", Val: target},
		})
	})
}

// leastLoadedHost is the host of the VM's cluster with the fewest other VMs.
func leastLoadedHost(vm *simulator.VirtualMachine) (types.ManagedObjectReference, bool) {
	var hosts []types.ManagedObjectReference
	if vm.ResourcePool != nil {
		if rp, ok := simulator.Map.Get(*vm.ResourcePool).(*simulator.ResourcePool); ok {
			if cr, ok := simulator.Map.Get(rp.Owner).(*simulator.ClusterComputeResource); ok {
				hosts = cr.Host
			}
		}
	}
	var target types.ManagedObjectReference
	best := -1
	for _, h := range hosts {
		hs, ok := simulator.Map.Get(h).(*simulator.HostSystem)
		if !ok {
			continue
		}
		n := 0
		for _, v := range hs.Vm {
			if v != vm.Self {
				n++
			}
		}
		if best < 0 || n < best {
			best, target = n, h
		}
	}
	return target, best >= 0
}

// forgetInGroupsHook drops destroyed VMs from the clusters' DRS VM groups once Destroy_Task ran.
func (l *Lab) forgetInGroupsHook(c *soapCall, w http.ResponseWriter) (bool, func(*httptest.ResponseRecorder)) {
	return false, func(*httptest.ResponseRecorder) { l.dropDestroyedFromGroups() }
}

// dropDestroyedFromGroups removes VMs that no longer exist from DRS VM groups (vCenter removes a
// VM from its cluster's groups when the VM is deleted; the simulator does not).
func (l *Lab) dropDestroyedFromGroups() {
	for _, ref := range l.inv.clusters {
		cluster, ok := simulator.Map.Get(ref).(*simulator.ClusterComputeResource)
		if !ok {
			continue
		}
		simulator.Map.WithLock(cluster, func() {
			cfg, ok := cluster.ConfigurationEx.(*types.ClusterConfigInfoEx)
			if !ok {
				return
			}
			for _, g := range cfg.Group {
				vg, ok := g.(*types.ClusterVmGroup)
				if !ok {
					continue
				}
				kept := vg.Vm[:0]
				for _, v := range vg.Vm {
					if simulator.Map.Get(v) != nil {
						kept = append(kept, v)
					}
				}
				vg.Vm = kept
			}
		})
	}
}
