package main

// Placement and DRS: a clone goes to spec.location.host, else to the least loaded host of its
// resource pool's cluster, counting clones on their way (the simulator leaves it on the source's
// host). DRS groups and rules
// themselves are the simulator's (ReconfigureComputeResource_Task); the lab only makes a destroyed
// VM leave its VM groups, as vCenter does. The rules are not enforced when placing clones.

import (
	"net/http"
	"net/http/httptest"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// placeClone puts the clone on the host chosen for it when the call arrived (cloneTarget), else on
// the least loaded host of its pool's cluster.
func (l *Lab) placeClone(req *types.CloneVM_Task, clone *simulator.VirtualMachine, chosen *types.ManagedObjectReference) {
	var target types.ManagedObjectReference
	if chosen != nil {
		target = *chosen
	} else if host, ok := l.cloneTarget(req); ok {
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

// cloneTarget is the host a CloneVM_Task's clone goes to: location.host, else the least loaded host
// of the target pool's cluster (its VMs plus the clones on their way there), as DRS places a clone
// when the task starts.
func (l *Lab) cloneTarget(req *types.CloneVM_Task) (types.ManagedObjectReference, bool) {
	if req.Spec.Location.Host != nil {
		return *req.Spec.Location.Host, true
	}
	pool := req.Spec.Location.Pool
	if pool == nil {
		if src, ok := simulator.Map.Get(req.This).(*simulator.VirtualMachine); ok {
			simulator.Map.WithLock(src, func() { pool = src.ResourcePool })
		}
	}
	var hosts []types.ManagedObjectReference
	if pool != nil {
		if rp, ok := simulator.Map.Get(*pool).(*simulator.ResourcePool); ok {
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
		var n int
		simulator.Map.WithLock(hs, func() { n = len(hs.Vm) })
		n += l.hostOps.incoming(h)
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
