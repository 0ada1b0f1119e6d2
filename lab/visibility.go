package main

// Visibility: what the lab's user cannot see, as vCenter and VMware's simulator say so.
//
//   - No permission on chosen VMs (POST /lab/config {"no_permission_vms": ["TRN-CAP-003"]}, by
//     name, matched when a read is answered): every property of such a VM that a
//     PropertyCollector read returns comes back in its missingSet with a NoPermission fault
//     (privilege System.Read) instead of its value, HTTP 200, as vCenter answers a read of an
//     object the user may not see; any other call on the VM (Fetch, a task) gets a NoPermission
//     fault.
//   - Expired sessions answered the simulator's way (POST /lab/config
//     {"expired_session_reads": "missing_set"}): after POST /lab/expire-sessions, Fetch,
//     RetrieveProperties and RetrievePropertiesEx are let through without a session (sessions.go)
//     and the simulator answers them as it does, HTTP 200 with every property of every object in
//     missingSet carrying NotAuthenticated (upstream govmomi does the same); the other calls still
//     get a NotAuthenticated fault. The default, "fault", answers every call so.

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"sync"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"
)

// The ways an expired session's reads are answered (POST /lab/config "expired_session_reads").
const (
	expiredReadsFault      = "fault"
	expiredReadsMissingSet = "missing_set"
)

// readMethods are the PropertyCollector reads whose answers carry per-object faults.
var readMethods = []string{"RetrievePropertiesEx", "ContinueRetrievePropertiesEx", "RetrieveProperties"}

// visibility holds the VMs the lab's user may not see, by name.
type visibility struct {
	mu     sync.Mutex
	hidden map[string]bool
}

func newVisibility() *visibility {
	return &visibility{hidden: map[string]bool{}}
}

// set replaces the VMs the user may not see (nil or empty: none).
func (v *visibility) set(names []string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.hidden = map[string]bool{}
	for _, n := range names {
		v.hidden[n] = true
	}
}

// names is the list as configured, sorted (GET /lab/config).
func (v *visibility) names() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := []string{}
	for n := range v.hidden {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// hides tells whether ref is a VM the user may not see now (by its current name).
func (v *visibility) hides(ref types.ManagedObjectReference) bool {
	if ref.Type != "VirtualMachine" {
		return false
	}
	v.mu.Lock()
	none := len(v.hidden) == 0
	v.mu.Unlock()
	if none {
		return false
	}
	vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		return false
	}
	var name string
	simulator.Map.WithLock(vm, func() { name = vm.Name })
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.hidden[name]
}

func noPermission(ref types.ManagedObjectReference) *types.NoPermission {
	return &types.NoPermission{Object: ref, PrivilegeId: "System.Read"}
}

// thisVM matches the managed object a call is made on, when it is a VM.
var thisVM = regexp.MustCompile(`<_this[^>]*type="VirtualMachine"[^>]*>([^<]+)</_this>`)

// refuseHidden answers a call made on a VM the user may not see with a NoPermission fault, as
// vCenter does (true: answered). PropertyCollector reads go through and are rewritten instead.
func (v *visibility) refuseHidden(c *soapCall, w http.ResponseWriter) bool {
	m := thisVM.FindSubmatch(c.body)
	if m == nil {
		return false
	}
	ref := types.ManagedObjectReference{Type: "VirtualMachine", Value: string(m[1])}
	if !v.hides(ref) {
		return false
	}
	writeFault(w, "Permission to perform this operation was denied.", noPermission(ref))
	return true
}

// readHook rewrites a PropertyCollector read's answer: each VM the user may not see has its
// properties replaced by missingSet entries carrying NoPermission.
func (v *visibility) readHook(c *soapCall, w http.ResponseWriter) (bool, func(*httptest.ResponseRecorder)) {
	v.mu.Lock()
	none := len(v.hidden) == 0
	v.mu.Unlock()
	if none {
		return false, nil
	}
	return false, func(rec *httptest.ResponseRecorder) {
		if rec.Code != http.StatusOK {
			return
		}
		body, objects := decodeRead(c.name, rec.Body.Bytes())
		if objects == nil {
			return
		}
		changed := false
		for i := range *objects {
			oc := &(*objects)[i]
			if !v.hides(oc.Obj) {
				continue
			}
			oc.MissingSet = hiddenProperties(*oc)
			oc.PropSet = nil
			changed = true
		}
		if !changed {
			return
		}
		fresh := httptest.NewRecorder()
		writeEnvelope(fresh, http.StatusOK, &response{Body: body})
		*rec = *fresh
	}
}

// hiddenProperties is what a read says of a VM the user may not see: each property asked for
// (as the simulator answered it) is missing, with NoPermission.
func hiddenProperties(oc types.ObjectContent) []types.MissingProperty {
	var paths []string
	for _, p := range oc.PropSet {
		paths = append(paths, p.Name)
	}
	for _, m := range oc.MissingSet {
		paths = append(paths, m.Path)
	}
	if len(paths) == 0 {
		paths = []string{""}
	}
	out := make([]types.MissingProperty, 0, len(paths))
	for _, p := range paths {
		out = append(out, types.MissingProperty{
			Path:  p,
			Fault: types.LocalizedMethodFault{Fault: noPermission(oc.Obj), LocalizedMessage: "Permission to perform this operation was denied."},
		})
	}
	return out
}

// decodeRead decodes the simulator's answer to a PropertyCollector read: the method's body (to
// encode again) and its objects (nil if the answer holds none or cannot be read).
func decodeRead(method string, data []byte) (soap.HasFault, *[]types.ObjectContent) {
	var body soap.HasFault
	var objects func() *[]types.ObjectContent
	switch method {
	case "RetrievePropertiesEx":
		b := &methods.RetrievePropertiesExBody{}
		body, objects = b, func() *[]types.ObjectContent {
			if b.Res == nil || b.Res.Returnval == nil {
				return nil
			}
			return &b.Res.Returnval.Objects
		}
	case "ContinueRetrievePropertiesEx":
		b := &methods.ContinueRetrievePropertiesExBody{}
		body, objects = b, func() *[]types.ObjectContent {
			if b.Res == nil {
				return nil
			}
			return &b.Res.Returnval.Objects
		}
	case "RetrieveProperties":
		b := &methods.RetrievePropertiesBody{}
		body, objects = b, func() *[]types.ObjectContent {
			if b.Res == nil {
				return nil
			}
			return &b.Res.Returnval
		}
	default:
		return nil, nil
	}
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.TypeFunc = types.TypeFunc()
	if err := dec.Decode(&soap.Envelope{Body: body}); err != nil {
		return nil, nil
	}
	return body, objects()
}
