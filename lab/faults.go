package main

// Injected latency and faults: clone_latency_ms, destroy_latency_ms and power_on_latency_ms, and CloneVM_Task calls
// that fail (faults.fail_nth, faults.fail_fraction) or silently come out as full copies
// (faults.full_copy_nth). A failing call returns a real task whose info.error is the fault.

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/types"
)

// cloneFault is one fault faults.fault accepts, and how the lab makes it for a CloneVM_Task of
// src whose first disk is disk.
type cloneFault struct {
	name string
	make func(req *types.CloneVM_Task, src *simulator.VirtualMachine, disk string) types.BaseMethodFault
}

// cloneFaults lists the faults faults.fault accepts (the spec is checked against this list).
var cloneFaults = []cloneFault{
	{"FileLocked", func(_ *types.CloneVM_Task, _ *simulator.VirtualMachine, disk string) types.BaseMethodFault {
		return &types.FileLocked{FileFault: types.FileFault{File: disk}}
	}},
	// vSphere has no "InsufficientDiskSpace" type: the name is an alias of the real
	// InsufficientStorageSpace fault (vim.fault.InsufficientStorageSpace).
	{"InsufficientDiskSpace", func(*types.CloneVM_Task, *simulator.VirtualMachine, string) types.BaseMethodFault {
		return &types.InsufficientStorageSpace{}
	}},
	{"InsufficientStorageSpace", func(*types.CloneVM_Task, *simulator.VirtualMachine, string) types.BaseMethodFault {
		return &types.InsufficientStorageSpace{}
	}},
	{"DuplicateName", func(req *types.CloneVM_Task, _ *simulator.VirtualMachine, _ string) types.BaseMethodFault {
		return &types.DuplicateName{Name: req.Name, Object: req.Folder}
	}},
	{"TaskInProgress", func(*types.CloneVM_Task, *simulator.VirtualMachine, string) types.BaseMethodFault {
		return &types.TaskInProgress{}
	}},
	{"HostCommunication", func(*types.CloneVM_Task, *simulator.VirtualMachine, string) types.BaseMethodFault {
		return &types.HostCommunication{}
	}},
	{"Timedout", func(*types.CloneVM_Task, *simulator.VirtualMachine, string) types.BaseMethodFault {
		return &types.Timedout{}
	}},
	{"InvalidArgument", func(*types.CloneVM_Task, *simulator.VirtualMachine, string) types.BaseMethodFault {
		return &types.InvalidArgument{InvalidProperty: "spec"}
	}},
	{"SystemError", func(*types.CloneVM_Task, *simulator.VirtualMachine, string) types.BaseMethodFault {
		return &types.SystemError{Reason: "fault injected by the lab"}
	}},
	{"NoDiskSpace", func(_ *types.CloneVM_Task, _ *simulator.VirtualMachine, disk string) types.BaseMethodFault {
		datastore := strings.Trim(strings.SplitN(disk, "]", 2)[0], "[")
		return &types.NoDiskSpace{FileFault: types.FileFault{File: disk}, Datastore: datastore}
	}},
	{"InvalidState", func(*types.CloneVM_Task, *simulator.VirtualMachine, string) types.BaseMethodFault {
		return &types.InvalidState{}
	}},
	{"ResourceInUse", func(_ *types.CloneVM_Task, src *simulator.VirtualMachine, _ string) types.BaseMethodFault {
		return &types.ResourceInUse{Type: "VirtualMachine", Name: src.Name}
	}},
}

func knownFaults() []string {
	names := make([]string, len(cloneFaults))
	for i, f := range cloneFaults {
		names[i] = f.name
	}
	return names
}

func isKnownFault(name string) bool {
	for _, f := range cloneFaults {
		if f.name == name {
			return true
		}
	}
	return false
}

// newFault makes the fault named name (a SystemError for a name the spec check would refuse).
func newFault(name string, req *types.CloneVM_Task, src *simulator.VirtualMachine, disk string) types.BaseMethodFault {
	for _, f := range cloneFaults {
		if f.name == name {
			return f.make(req, src, disk)
		}
	}
	return &types.SystemError{Reason: "fault injected by the lab"}
}

// faultMessage is the sentence vCenter puts in a failed task's info.error.localizedMessage
// (the simulator puts the Go type name there, "*types.InsufficientStorageSpace", which no
// vCenter ever says). datastore is the clone's target datastore, when known.
func faultMessage(fault types.BaseMethodFault, datastore string) string {
	switch f := fault.(type) {
	case *types.InsufficientStorageSpace:
		return fmt.Sprintf("Insufficient disk space on datastore '%s'.", datastore)
	case *types.NoDiskSpace:
		return fmt.Sprintf("Insufficient disk space on datastore '%s'.", f.Datastore)
	case *types.FileLocked:
		return fmt.Sprintf("Unable to access file %s since it is locked", f.File)
	case *types.DuplicateName:
		return fmt.Sprintf("The name '%s' already exists.", f.Name)
	case *types.TaskInProgress:
		return "Another task is already in progress."
	case *types.HostCommunication:
		return "An error occurred communicating with the remote host."
	case *types.Timedout:
		return "Operation timed out."
	case *types.InvalidArgument:
		return fmt.Sprintf("A specified parameter was not correct: %s", f.InvalidProperty)
	case *types.InvalidState:
		return "The operation is not allowed in the current state."
	case *types.ResourceInUse:
		return fmt.Sprintf("The resource '%s' is in use.", f.Name)
	case *types.SystemError:
		return fmt.Sprintf("A general system error occurred: %s", f.Reason)
	}
	return strings.TrimPrefix(fmt.Sprintf("%T", fault), "*types.")
}

// cloneDraw is what the fault settings decide for one CloneVM_Task call.
type cloneDraw struct {
	fail     bool   // fail the call with fault
	fault    string // faults.fault
	fullCopy bool   // make a full copy whatever diskMoveType says
	outage   bool   // lose vCenter right after the reply (stepfaults.go)
}

// drawCloneFaults counts one more CloneVM_Task call and decides its fate.
func (l *Lab) drawCloneFaults() cloneDraw {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cloneOrdinal++
	d := cloneDraw{
		fail:     containsInt(l.faults.FailNth, l.cloneOrdinal),
		fault:    l.faults.Fault,
		fullCopy: containsInt(l.faults.FullCopyNth, l.cloneOrdinal),
		outage:   containsInt(l.faults.OutageAfterCloneNth, l.cloneOrdinal),
	}
	if l.faults.FailFraction > 0 && l.rng.Float64() < l.faults.FailFraction {
		d.fail = true
	}
	return d
}

func containsInt(list []int, n int) bool {
	for _, v := range list {
		if v == n {
			return true
		}
	}
	return false
}

// datastoreName is the name of the datastore a CloneVM_Task puts the clone on ("" if unset).
func datastoreName(req *types.CloneVM_Task) string {
	if req.Spec.Location.Datastore == nil {
		return ""
	}
	if ds, ok := simulator.Map.Get(*req.Spec.Location.Datastore).(*simulator.Datastore); ok {
		return ds.Name
	}
	return ""
}

// failTask answers a CloneVM_Task with a task that failed with fault (no VM is created).
func (l *Lab) failTask(w http.ResponseWriter, src *simulator.VirtualMachine, req *types.CloneVM_Task, fault types.BaseMethodFault) {
	task := simulator.CreateTask(src, "cloneVm", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		return nil, fault
	})
	if tip, ok := fault.(*types.TaskInProgress); ok {
		tip.Task = task.Self
	}
	ref := task.Run()
	// Tasks finish before the call returns in this simulator version, so the client only ever
	// sees the corrected message.
	simulator.Map.Update(task, []types.PropertyChange{{Name: "info.error", Val: types.LocalizedMethodFault{
		Fault:            fault,
		LocalizedMessage: faultMessage(fault, datastoreName(req)),
	}}})
	writeEnvelope(w, http.StatusOK, &response{Body: &methods.CloneVM_TaskBody{
		Res: &types.CloneVM_TaskResponse{Returnval: ref},
	}})
}

// destroyLatencyHook delays Destroy_Task of a VM by destroy_latency_ms.
func (l *Lab) destroyLatencyHook(c *soapCall, w http.ResponseWriter) (bool, func(*httptest.ResponseRecorder)) {
	if strings.Contains(string(c.body), "VirtualMachine") {
		c.idle += l.sleep(func() int { return l.destroyLat })
	}
	return false, nil
}

// powerOnLatencyHook delays PowerOnVM_Task by power_on_latency_ms (before the simulator powers the
// VM on and any pending customization starts).
func (l *Lab) powerOnLatencyHook(c *soapCall, w http.ResponseWriter) (bool, func(*httptest.ResponseRecorder)) {
	c.idle += l.sleep(func() int { return l.powerOnLat })
	return false, nil
}
