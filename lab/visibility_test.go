package main

// Visibility: reads of VMs the user may not see answer NoPermission per object; after an expiry,
// reads answered the simulator's way come back HTTP 200 with NotAuthenticated per object.

import (
	"context"
	"net/http"
	"net/url"
	"reflect"
	"testing"

	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/types"
)

// readVMs reads name and config.instanceUuid of refs in one RetrievePropertiesEx, by moref.
func readVMs(t *testing.T, c *vim25.Client, refs ...types.ManagedObjectReference) (map[string]types.ObjectContent, error) {
	t.Helper()
	var objects []types.ObjectSpec
	for _, r := range refs {
		objects = append(objects, types.ObjectSpec{Obj: r})
	}
	req := types.RetrievePropertiesEx{
		This: c.ServiceContent.PropertyCollector,
		SpecSet: []types.PropertyFilterSpec{{
			ObjectSet: objects,
			PropSet:   []types.PropertySpec{{Type: "VirtualMachine", PathSet: []string{"name", "config.instanceUuid"}}},
		}},
	}
	res, err := methods.RetrievePropertiesEx(context.Background(), c, &req)
	if err != nil {
		return nil, err
	}
	out := map[string]types.ObjectContent{}
	if res.Returnval != nil {
		for _, oc := range res.Returnval.Objects {
			out[oc.Obj.Value] = oc
		}
	}
	return out, nil
}

// missingFaults is the fault type of each missing property of oc, by path.
func missingFaults(oc types.ObjectContent) map[string]string {
	out := map[string]string{}
	for _, m := range oc.MissingSet {
		out[m.Path] = reflect.TypeOf(m.Fault.Fault).Elem().Name()
	}
	return out
}

func TestExpiredReadsAnswerAsTheSimulatorWhenAsked(t *testing.T) {
	tl := startLab(t, nil)
	ctx := context.Background()
	c := tl.connect()
	capture := tl.built.inv.parents["Capture"].ref

	// The default: an expired session's read is a NotAuthenticated fault.
	tl.mustCall("POST", "/lab/expire-sessions", map[string]interface{}{}, nil)
	if _, err := readVMs(t, c, capture); faultName(err) != "NotAuthenticated" {
		t.Fatalf("default mode, read after expiry: %v, want a NotAuthenticated fault", err)
	}

	// The simulator's way: HTTP 200, every property missing with NotAuthenticated.
	var cfg configView
	tl.mustCall("POST", "/lab/config", map[string]interface{}{"expired_session_reads": "missing_set"}, &cfg)
	if cfg.ExpiredSessionReads != "missing_set" {
		t.Fatalf("config: %+v", cfg)
	}
	got, err := readVMs(t, c, capture)
	if err != nil {
		t.Fatalf("missing_set mode, read after expiry: %v, want an answer", err)
	}
	oc := got[capture.Value]
	if len(oc.PropSet) != 0 {
		t.Fatalf("properties read without a session: %v", oc.PropSet)
	}
	faults := missingFaults(oc)
	if faults["name"] != "NotAuthenticated" || faults["config.instanceUuid"] != "NotAuthenticated" {
		t.Fatalf("missingSet: %v, want NotAuthenticated for each property", faults)
	}
	if n := tl.stats().ReadsWithoutSession; n != 1 {
		t.Fatalf("reads_without_session: %d, want 1", n)
	}
	// Other calls still get the fault; currentSession reads as none (so a client logs in).
	if _, err := methods.GetCurrentTime(ctx, c); faultName(err) != "NotAuthenticated" {
		t.Fatalf("CurrentTime after expiry: %v, want NotAuthenticated", err)
	}
	if s, err := session.NewManager(c).UserSession(ctx); err != nil || s != nil {
		t.Fatalf("currentSession after expiry: %v %v, want none", s, err)
	}
	spec := tl.built.lab.spec
	if err := session.NewManager(c).Login(ctx, url.UserPassword(spec.User, spec.Password)); err != nil {
		t.Fatalf("a new login: %v", err)
	}
	got, err = readVMs(t, c, capture)
	if err != nil || len(got[capture.Value].MissingSet) != 0 || len(got[capture.Value].PropSet) != 2 {
		t.Fatalf("read after the new login: %+v %v", got, err)
	}
	if status := tl.call("POST", "/lab/config", map[string]interface{}{"expired_session_reads": "empty"}, nil); status != http.StatusBadRequest {
		t.Fatalf("an unknown mode: status %d, want 400", status)
	}
}

func TestVMsWithoutPermissionAnswerNoPermission(t *testing.T) {
	tl := startLab(t, nil)
	ctx := context.Background()
	c := tl.connect()
	capture, packaging := tl.built.inv.parents["Capture"].ref, tl.built.inv.parents["Packaging"].ref

	var cfg configView
	tl.mustCall("POST", "/lab/config", map[string]interface{}{"no_permission_vms": []string{"Capture"}}, &cfg)
	if len(cfg.NoPermissionVMs) != 1 || cfg.NoPermissionVMs[0] != "Capture" {
		t.Fatalf("config: %+v", cfg)
	}
	got, err := readVMs(t, c, capture, packaging)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	hidden, seen := got[capture.Value], got[packaging.Value]
	if len(hidden.PropSet) != 0 || len(seen.MissingSet) != 0 || len(seen.PropSet) != 2 {
		t.Fatalf("hidden %+v, seen %+v", hidden, seen)
	}
	faults := missingFaults(hidden)
	if faults["name"] != "NoPermission" || faults["config.instanceUuid"] != "NoPermission" {
		t.Fatalf("missingSet: %v, want NoPermission for each property", faults)
	}
	if p := hidden.MissingSet[0].Fault.Fault.(*types.NoPermission); p.PrivilegeId != "System.Read" || p.Object != capture {
		t.Fatalf("fault: %+v", p)
	}

	// Through a container view too.
	m := view.NewManager(c)
	v, err := m.CreateContainerView(ctx, c.ServiceContent.RootFolder, []string{"VirtualMachine"}, true)
	if err != nil {
		t.Fatalf("view: %v", err)
	}
	var contents []types.ObjectContent
	if err := v.Retrieve(ctx, []string{"VirtualMachine"}, []string{"name"}, &contents); err != nil {
		t.Fatalf("view read: %v", err)
	}
	found := 0
	for _, oc := range contents {
		if oc.Obj == capture {
			found++
			if len(oc.PropSet) != 0 || missingFaults(oc)["name"] != "NoPermission" {
				t.Fatalf("hidden in a view: %+v", oc)
			}
		}
	}
	if found != 1 {
		t.Fatalf("the hidden VM is in the view %d times, want once", found)
	}

	// Any call on it is refused.
	if _, err := methods.PowerOnVM_Task(ctx, c, &types.PowerOnVM_Task{This: capture}); faultName(err) != "NoPermission" {
		t.Fatalf("power on a hidden VM: %v, want NoPermission", err)
	}
	tl.mustCall("POST", "/lab/config", map[string]interface{}{"no_permission_vms": nil}, nil)
	got, err = readVMs(t, c, capture)
	if err != nil || len(got[capture.Value].PropSet) != 2 {
		t.Fatalf("after clearing: %+v %v", got, err)
	}
}
