package main

// Faults in the steps after a clone task: the calls that label a new clone (SetField), set its disk
// mode (ReconfigVM_Task) or destroy it (Destroy_Task) refused with a chosen fault (faults.refuse),
// and vCenter lost right after a clone task answered (faults.outage_after_clone_nth: every session
// ends and the lab is paused for outage_after_clone_s seconds once the reply is sent). A refused
// task method gets a real task whose info.error is the fault; any other method a SOAP fault. A
// refusal with NotAuthenticated also ends the caller's session, as an expired one would: the client
// logs in again and repeats the call, which the next ordinal may refuse again.

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"
)

// RefuseSpec is one rule of faults.refuse: calls of Method (a SOAP method, e.g. "SetField")
// answered with Fault. Nth lists the calls of that method to refuse, counted from 1 since the
// rule was set (POST /lab/config with "refuse", or the spec) or POST /lab/reset; empty: every call.
type RefuseSpec struct {
	Method    string `json:"method"`
	Fault     string `json:"fault"`
	Nth       []int  `json:"nth"`
	Privilege string `json:"privilege"` // NoPermission's privilegeId ("" : the method's own)
}

// refusableFaults are the faults a refuse rule may answer with.
var refusableFaults = []string{"NoPermission", "NotAuthenticated", "InvalidArgument", "InvalidState",
	"SystemError", "TaskInProgress"}

// methodPrivileges is the privilege vCenter names in NoPermission for a refused method.
var methodPrivileges = map[string]string{
	"SetField":        "Global.SetCustomField",
	"ReconfigVM_Task": "VirtualMachine.Config.Settings",
	"Destroy_Task":    "VirtualMachine.Inventory.Delete",
	"PowerOnVM_Task":  "VirtualMachine.Interact.PowerOn",
	"PowerOffVM_Task": "VirtualMachine.Interact.PowerOff",
}

func (r RefuseSpec) validate(i int, p *problems) {
	where := fmt.Sprintf("faults.refuse[%d]", i)
	if r.Method == "" || strings.ContainsAny(r.Method, " <>/") {
		p.add("%s.method: name a SOAP method, e.g. \"SetField\" or \"ReconfigVM_Task\"", where)
	}
	if noSessionMethods[r.Method] {
		p.add("%s.method: %s needs no session and cannot be refused", where, r.Method)
	}
	known := false
	for _, f := range refusableFaults {
		known = known || f == r.Fault
	}
	if !known {
		p.add("%s.fault: unknown fault %q (known: %s)", where, r.Fault, strings.Join(refusableFaults, ", "))
	}
	for _, n := range r.Nth {
		if n < 1 {
			p.add("%s.nth: ordinals start at 1, got %d", where, n)
		}
	}
}

// refusals counts each rule's calls (its ordinals).
type refusals struct {
	mu     sync.Mutex
	counts []int
}

// restart counts every rule's calls from 0 again (a new list of rules, or POST /lab/reset).
func (r *refusals) restart() {
	r.mu.Lock()
	r.counts = nil
	r.mu.Unlock()
}

// draw counts one call of method and returns the first rule that refuses it (nil: none).
func (r *refusals) draw(rules []RefuseSpec, method string) *RefuseSpec {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.counts) != len(rules) {
		r.counts = make([]int, len(rules))
	}
	var refused *RefuseSpec
	for i := range rules {
		if rules[i].Method != method {
			continue
		}
		r.counts[i]++
		if refused == nil && (len(rules[i].Nth) == 0 || containsInt(rules[i].Nth, r.counts[i])) {
			refused = &rules[i]
		}
	}
	return refused
}

// refuseHook answers a call a faults.refuse rule refuses (it runs for every method).
func (l *Lab) refuseHook(c *soapCall, w http.ResponseWriter) (bool, func(*httptest.ResponseRecorder)) {
	l.mu.Lock()
	rules := l.faults.Refuse
	l.mu.Unlock()
	if len(rules) == 0 || c.name == "" {
		return false, nil
	}
	rule := l.refusals.draw(rules, c.name)
	if rule == nil {
		return false, nil
	}
	fault, msg := refusalFault(*rule, decodeBody(c.body))
	if rule.Fault == "NotAuthenticated" {
		l.sessions.end(c.cookie) // as an expired session: the client logs in again
		writeFault(w, msg, fault)
		return true, nil
	}
	if strings.HasSuffix(c.name, "_Task") {
		if obj := thisObject(decodeBody(c.body)); obj != nil {
			writeFailedTask(w, obj, c.name, fault, msg)
			return true, nil
		}
	}
	writeFault(w, msg, fault)
	return true, nil
}

// refusalFault is the fault a rule answers with, and vCenter's sentence for it.
func refusalFault(rule RefuseSpec, body interface{}) (types.BaseMethodFault, string) {
	object := subject(body)
	switch rule.Fault {
	case "NoPermission":
		privilege := rule.Privilege
		if privilege == "" {
			privilege = methodPrivileges[rule.Method]
		}
		if privilege == "" {
			privilege = "System.Modify"
		}
		return &types.NoPermission{Object: object, PrivilegeId: privilege},
			fmt.Sprintf("Permission to perform this operation was denied. Required privilege '%s' on managed object with id '%s'.", privilege, object.Value)
	case "NotAuthenticated":
		return &types.NotAuthenticated{NoPermission: types.NoPermission{
				Object:      types.ManagedObjectReference{Type: "ServiceInstance", Value: "ServiceInstance"},
				PrivilegeId: "System.View",
			}},
			"The session is not authenticated."
	case "InvalidArgument":
		return &types.InvalidArgument{InvalidProperty: "spec"}, "A specified parameter was not correct: spec"
	case "InvalidState":
		return &types.InvalidState{}, "The operation is not allowed in the current state."
	case "TaskInProgress":
		// Its task is the one in progress on the object (a Task, never the object itself:
		// pyVmomi refuses any other type); a refused task method names its own failed task
		// (writeFailedTask).
		inProgress := types.ManagedObjectReference{Type: "Task", Value: "task-inprogress-" + object.Value}
		return &types.TaskInProgress{Task: inProgress}, "Another task is already in progress."
	}
	return &types.SystemError{Reason: "fault injected by the lab"}, "A general system error occurred: fault injected by the lab"
}

// thisObject is the managed object a decoded request is called on (its This field), if the lab
// knows it.
func thisObject(body interface{}) mo.Reference {
	if body == nil {
		return nil
	}
	v := reflect.ValueOf(body)
	for v.Kind() == reflect.Ptr {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	field := v.FieldByName("This")
	if !field.IsValid() {
		return nil
	}
	ref, ok := field.Interface().(types.ManagedObjectReference)
	if !ok {
		return nil
	}
	return simulator.Map.Get(ref)
}

// subject is the managed object a decoded request acts on: its Entity (SetField's VM), else the
// object it is called on.
func subject(body interface{}) types.ManagedObjectReference {
	v := reflect.Indirect(reflect.ValueOf(body))
	if v.Kind() == reflect.Struct {
		if f := v.FieldByName("Entity"); f.IsValid() {
			if ref, ok := f.Interface().(types.ManagedObjectReference); ok {
				return ref
			}
		}
	}
	if obj := thisObject(body); obj != nil {
		return obj.Reference()
	}
	return types.ManagedObjectReference{}
}

// writeFailedTask answers a task method with a task on obj that failed with fault.
func writeFailedTask(w http.ResponseWriter, obj mo.Reference, method string, fault types.BaseMethodFault, msg string) {
	name := strings.TrimSuffix(method, "_Task")
	name = strings.ToLower(name[:1]) + name[1:]
	task := simulator.CreateTask(obj, name, func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		return nil, fault
	})
	if tip, ok := fault.(*types.TaskInProgress); ok {
		tip.Task = task.Self
	}
	ref := task.Run()
	simulator.Map.Update(task, []types.PropertyChange{{Name: "info.error", Val: types.LocalizedMethodFault{
		Fault: fault, LocalizedMessage: msg,
	}}})
	var value strings.Builder
	_ = xml.EscapeText(&value, []byte(ref.Value))
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, xml.Header+`<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/"`+
		` xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"`+
		` xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">`+
		`<soapenv:Body><`+method+`Response xmlns="urn:vim25"><returnval type="Task">`+value.String()+
		`</returnval></`+method+`Response></soapenv:Body></soapenv:Envelope>`)
}

// end forgets one session (a refusal with NotAuthenticated), as if it had expired.
func (g *sessionGate) end(cookie string) {
	g.mu.Lock()
	delete(g.live, cookie)
	g.mu.Unlock()
}

// outageAfterReply is what follows the reply of a CloneVM_Task that outage_after_clone_nth names:
// every session ends and the lab is unreachable for outage_after_clone_s (the clone exists and
// its reply was delivered: the client loses vCenter right after).
func (l *Lab) outageAfterReply() func() {
	l.mu.Lock()
	seconds := l.faults.OutageAfterCloneS
	l.mu.Unlock()
	return func() {
		l.sessions.expireAll()
		l.outage.pauseFor(time.Duration(seconds * float64(time.Second)))
	}
}
