package main

// The steps after a clone task: calls refused by faults.refuse (a SOAP fault, or a real failed
// task for a task method; NotAuthenticated ends the session) and vCenter lost right after a clone
// task's reply (faults.outage_after_clone_nth).

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/task"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

func refuse(rules ...map[string]interface{}) map[string]interface{} {
	return map[string]interface{}{"faults": map[string]interface{}{"refuse": rules}}
}

// customField defines a VM custom attribute and returns its key.
func customField(t *testing.T, c *vim25.Client, name string) int32 {
	t.Helper()
	m, err := object.GetCustomFieldsManager(c)
	if err != nil {
		t.Fatalf("custom fields manager: %v", err)
	}
	def, err := m.Add(context.Background(), name, "VirtualMachine", nil, nil)
	if err != nil {
		t.Fatalf("define %s: %v", name, err)
	}
	return def.Key
}

func setField(c *vim25.Client, vm *object.VirtualMachine, key int32, value string) error {
	m, err := object.GetCustomFieldsManager(c)
	if err != nil {
		return err
	}
	return m.Set(context.Background(), vm.Reference(), key, value)
}

func TestRefusedSetFieldAnswersTheFaultOnTheCallsNamed(t *testing.T) {
	tl, clone := startWithAClone(t)
	c := tl.connect()
	key := customField(t, c, "ManagedBy")

	tl.mustCall("POST", "/lab/config", refuse(map[string]interface{}{
		"method": "SetField", "fault": "NoPermission", "nth": []int{2}}), nil)
	if err := setField(c, clone, key, "one"); err != nil {
		t.Fatalf("SetField 1: %v", err)
	}
	err := setField(c, clone, key, "two")
	if faultName(err) != "NoPermission" {
		t.Fatalf("SetField 2: %v, want NoPermission", err)
	}
	fault := soap.ToSoapFault(err).VimFault().(types.NoPermission)
	if fault.PrivilegeId != "Global.SetCustomField" || fault.Object.Value != clone.Reference().Value {
		t.Fatalf("NoPermission names %s on %s", fault.PrivilegeId, fault.Object.Value)
	}
	if err := setField(c, clone, key, "three"); err != nil {
		t.Fatalf("SetField 3: %v", err)
	}
	if got := tl.vms()["c1"].Custom["ManagedBy"]; got != "three" {
		t.Fatalf("ManagedBy is %q: the refused call changed something", got)
	}
	if s := tl.stats(); s.Requests["SetField"] != 3 {
		t.Fatalf("SetField calls %d, want 3 (a refused one is counted too)", s.Requests["SetField"])
	}

	// A new list of rules counts from 1 again; an empty nth refuses every call.
	tl.mustCall("POST", "/lab/config", refuse(map[string]interface{}{
		"method": "SetField", "fault": "SystemError"}), nil)
	for i := 0; i < 2; i++ {
		if err := setField(c, clone, key, "x"); faultName(err) != "SystemError" {
			t.Fatalf("every SetField: %v", err)
		}
	}
	tl.mustCall("POST", "/lab/config", refuse(), nil)
	if err := setField(c, clone, key, "four"); err != nil {
		t.Fatalf("rules cleared: %v", err)
	}
}

// startWithAClone starts a lab and makes one linked clone of Capture, "c1".
func startWithAClone(t *testing.T) (*testLab, *object.VirtualMachine) {
	tl := startLab(t, nil)
	parent := tl.parent(tl.connect(), "Capture")
	snap := tl.snapshot(parent)
	return tl, tl.mustClone(parent, "c1", tl.cloneSpec(&snap, linkedMove))
}

func TestARefusedTaskMethodGetsARealFailedTask(t *testing.T) {
	tl, clone := startWithAClone(t)
	tl.mustCall("POST", "/lab/config", refuse(
		map[string]interface{}{"method": "ReconfigVM_Task", "fault": "NoPermission", "nth": []int{1}},
		map[string]interface{}{"method": "Destroy_Task", "fault": "InvalidState", "nth": []int{1}},
	), nil)
	ctx := context.Background()

	tk, err := clone.Reconfigure(ctx, types.VirtualMachineConfigSpec{Annotation: "changed"})
	if err != nil {
		t.Fatalf("ReconfigVM_Task is answered with a task, got %v", err)
	}
	err = tk.Wait(ctx)
	if faultName(err) != "NoPermission" {
		t.Fatalf("reconfigure task: %v, want NoPermission", err)
	}
	if msg := err.(task.Error).LocalizedMessage; !strings.Contains(msg, "VirtualMachine.Config.Settings") {
		t.Fatalf("message %q does not name the privilege", msg)
	}
	if tl.vms()["c1"].Notes == "changed" {
		t.Fatal("the refused reconfiguration was applied")
	}
	tk, err = clone.Destroy(ctx)
	if err != nil {
		t.Fatalf("Destroy_Task: %v", err)
	}
	if err := tk.Wait(ctx); faultName(err) != "InvalidState" {
		t.Fatalf("destroy task: %v, want InvalidState", err)
	}
	if _, there := tl.vms()["c1"]; !there {
		t.Fatal("the refused destroy removed the VM")
	}
	// The second calls go through.
	if tk, _ = clone.Destroy(ctx); tk.Wait(ctx) != nil {
		t.Fatal("the second destroy failed")
	}
	if _, there := tl.vms()["c1"]; there {
		t.Fatal("the second destroy left the VM")
	}
}

func TestARefusalWithTaskInProgressNamesATask(t *testing.T) {
	tl, clone := startWithAClone(t)
	tl.mustCall("POST", "/lab/config", refuse(
		map[string]interface{}{"method": "Destroy_Task", "fault": "TaskInProgress", "nth": []int{1}},
	), nil)
	ctx := context.Background()
	tk, err := clone.Destroy(ctx)
	if err != nil {
		t.Fatalf("Destroy_Task: %v", err)
	}
	err = tk.Wait(ctx)
	if faultName(err) != "TaskInProgress" {
		t.Fatalf("destroy task: %v, want TaskInProgress", err)
	}
	// vCenter's TaskInProgress names a Task (pyVmomi refuses any other type there).
	tip := err.(task.Error).Fault().(*types.TaskInProgress)
	if tip.Task.Type != "Task" || tip.Task.Value == "" {
		t.Fatalf("TaskInProgress.task = %v, want a Task", tip.Task)
	}
	fault, _ := refusalFault(RefuseSpec{Method: "SetField", Fault: "TaskInProgress"}, nil)
	if ref := fault.(*types.TaskInProgress).Task; ref.Type != "Task" {
		t.Fatalf("a SOAP fault's TaskInProgress.task = %v, want a Task", ref)
	}
}

func TestRefusedWithNotAuthenticatedEndsTheSession(t *testing.T) {
	tl := startLab(t, nil)
	ctx := context.Background()
	c := tl.connect()
	tl.mustCall("POST", "/lab/config", refuse(map[string]interface{}{
		"method": "CurrentTime", "fault": "NotAuthenticated", "nth": []int{1}}), nil)
	if _, err := methods.GetCurrentTime(ctx, c); faultName(err) != "NotAuthenticated" {
		t.Fatalf("refused: %v, want NotAuthenticated", err)
	}
	if n := tl.stats().Sessions; n != 0 {
		t.Fatalf("sessions after the refusal: %d, want 0 (it ended)", n)
	}
	spec := tl.built.lab.spec
	if err := session.NewManager(c).Login(ctx, url.UserPassword(spec.User, spec.Password)); err != nil {
		t.Fatalf("a new login: %v", err)
	}
	if _, err := methods.GetCurrentTime(ctx, c); err != nil {
		t.Fatalf("call 2 after the new login: %v", err)
	}
}

func TestVCenterIsLostRightAfterTheReplyOfTheCloneNamed(t *testing.T) {
	tl := startLab(t, func(s *Spec) {
		s.Faults.OutageAfterCloneNth = []int{2}
		s.Faults.OutageAfterCloneS = 1
	})
	ctx := context.Background()
	c := tl.connect()
	parent := tl.parent(c, "Capture")
	snap := tl.snapshot(parent)
	tl.mustClone(parent, "c1", tl.cloneSpec(&snap, linkedMove))

	// The second clone's reply arrives (a task); every call after it is dropped for a while.
	folder := object.NewFolder(c, tl.built.inv.vmFolders["Training"])
	if _, err := parent.Clone(ctx, folder, "c2", tl.cloneSpec(&snap, linkedMove)); err != nil {
		t.Fatalf("the clone call's reply was lost: %v", err)
	}
	if _, made := tl.vms()["c2"]; !made {
		t.Fatal("the clone was not made")
	}
	if s := tl.stats(); !s.Paused || s.Sessions != 0 {
		t.Fatalf("after the reply: paused %v, sessions %d", s.Paused, s.Sessions)
	}
	if _, err := methods.GetCurrentTime(ctx, c); err == nil || faultName(err) != "" {
		t.Fatalf("a call right after: %v, want a dropped connection", err)
	}
	waitFor(t, 5*time.Second, "the outage to end", func() bool { return !tl.stats().Paused })
	if _, err := methods.GetCurrentTime(ctx, c); faultName(err) != "NotAuthenticated" {
		t.Fatalf("after the outage: %v, want NotAuthenticated (the session ended)", err)
	}
	tl.connect() // a new login works
}

func TestRefuseRulesAreChecked(t *testing.T) {
	tl := startLab(t, nil)
	var answer errorResponse
	status := tl.call("POST", "/lab/config", refuse(
		map[string]interface{}{"method": "SetField", "fault": "Nope"},
		map[string]interface{}{"method": "Login", "fault": "NoPermission", "nth": []int{0}},
		map[string]interface{}{"methd": "SetField"},
	), &answer)
	if status != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", status)
	}
	for _, want := range []string{
		`faults.refuse[0].fault: unknown fault "Nope"`,
		"faults.refuse[1].method: Login needs no session",
		"faults.refuse[1].nth: ordinals start at 1, got 0",
		`faults.refuse[2]: unknown field "methd"`,
	} {
		if !strings.Contains(answer.Error, want) {
			t.Errorf("error %q lacks %q", answer.Error, want)
		}
	}
	var view configView
	tl.mustCall("GET", "/lab/config", nil, &view)
	if len(view.Faults.Refuse) != 0 || view.Faults.OutageAfterCloneNth == nil {
		t.Fatalf("a refused config changed the rules: %+v", view.Faults)
	}
}
