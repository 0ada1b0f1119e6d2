package main

// SOAP routing: every call to /sdk is counted, passes the session gate and the visibility check
// (a call on a VM the user may not see), then the hooks of its method (which may answer it
// themselves), then the simulator; storage figures are re-imposed after any call that may have
// changed them. While the lab is paused the connection is dropped.

import (
	"io/ioutil"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/vmware/govmomi/vim25/types"
)

// soapCall is one SOAP request on its way through the lab.
type soapCall struct {
	r      *http.Request
	body   []byte
	name   string        // the method: the first element of the SOAP body ("" if unreadable)
	cookie string        // the session cookie sent ("" if none)
	idle   time.Duration // injected latency and lock waits: left out of busy_ms
	// CloneVM_Task: the host its clone goes to, chosen when the call arrives (hostops.go)
	cloneHost *types.ManagedObjectReference
	// afterReply runs once the answer has been sent (a hook's: stepfaults.go's outage)
	afterReply func()
}

// A methodHook runs before the simulator sees a call of its method. It either answers the call
// itself (done: nothing else runs, the simulator included) or lets it through, and may return a
// function to run on the simulator's answer before that is sent.
type methodHook func(c *soapCall, w http.ResponseWriter) (done bool, after func(rec *httptest.ResponseRecorder))

// registerHooks says which concern acts on which method, in the order they run.
func (l *Lab) registerHooks() {
	l.hooks = map[string][]methodHook{}
	on := func(hook methodHook, names ...string) {
		for _, name := range names {
			l.hooks[name] = append(l.hooks[name], hook)
		}
	}
	on(l.sessions.loginHook, loginMethods...)     // sessions.go
	on(l.sessions.logoutHook, "Logout")           // sessions.go
	on(l.refuseHook, anyMethod)                   // stepfaults.go: every method
	on(l.privilegeHook, privilegeMethods...)      // privileges.go
	on(l.cloneHook, "CloneVM_Task")               // clone.go
	on(l.destroyLatencyHook, "Destroy_Task")      // faults.go
	on(l.customizeHook, "CustomizeVM_Task")       // customize.go
	on(l.powerOnLatencyHook, "PowerOnVM_Task")    // faults.go
	on(l.powerOnHook, "PowerOnVM_Task")           // customize.go
	on(l.forgetCustomizationHook, "Destroy_Task") // customize.go
	on(l.forgetInGroupsHook, "Destroy_Task")      // drs.go
	on(l.visible.readHook, readMethods...)        // visibility.go
}

// anyMethod registers a hook for every method (run before the hooks of the call's own method).
const anyMethod = "*"

// Methods that cannot change storage figures (no re-application after them).
var readOnlyMethods = map[string]bool{
	"Fetch": true, "RetrieveProperties": true, "RetrievePropertiesEx": true, "ContinueRetrievePropertiesEx": true,
	"CancelRetrievePropertiesEx": true, "WaitForUpdates": true, "WaitForUpdatesEx": true,
	"CheckForUpdates": true, "CreateFilter": true, "DestroyPropertyFilter": true,
	"CreatePropertyCollector": true, "DestroyPropertyCollector": true,
	"CreateContainerView": true, "CreateListView": true, "DestroyView": true,
	"RetrieveServiceContent": true, "CurrentTime": true, "Login": true, "Logout": true,
	"FindByInventoryPath": true, "FindChild": true, "FindByUuid": true, "SessionIsActive": true,
	// custom attribute values, events, privileges, customization specs: never storage
	"SetField": true, "AddCustomFieldDef": true, "QueryEvents": true, "CancelWaitForUpdates": true,
	"FetchUserPrivilegeOnEntities": true, "HasPrivilegeOnEntities": true,
	"DoesCustomizationSpecExist": true, "GetCustomizationSpec": true,
}

// Methods that read properties: with delta_growth_gb_per_min set, storage figures are re-imposed
// before them, so a read sees each clone's size as of now.
var propertyReads = map[string]bool{
	"Fetch": true, "RetrieveProperties": true, "RetrievePropertiesEx": true,
	"ContinueRetrievePropertiesEx": true,
}

func (l *Lab) serveSOAP(w http.ResponseWriter, r *http.Request) {
	// While paused (POST /lab/pause) vCenter is unreachable: a SOAP request that arrives, or
	// whose answer is ready, is dropped with its connection (the work it asked for may be done:
	// a lost reply), as when the network or vCenter goes away mid-run.
	if l.dropWhilePaused(w) {
		return
	}
	rec := httptest.NewRecorder()
	c := l.answerSOAP(rec, r)
	if l.dropWhilePaused(w) {
		return
	}
	copyRecorded(w, rec)
	if c != nil && c.afterReply != nil {
		c.afterReply() // before the handler returns: the client reads the answer after it
	}
}

// answerSOAP answers one call into w and returns it (nil if its body could not be read).
func (l *Lab) answerSOAP(w http.ResponseWriter, r *http.Request) *soapCall {
	body, err := ioutil.ReadAll(r.Body)
	_ = r.Body.Close()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil
	}
	c := &soapCall{r: r, body: body, name: soapMethodName(body), cookie: sessionCookie(r)}
	defer l.stats.begin(c)()
	defer l.trackHostOp(c)()
	if !l.sessions.admit(c, w) || l.visible.refuseHidden(c, w) {
		return c
	}
	var afters []func(*httptest.ResponseRecorder)
	for _, hook := range append(append([]methodHook{}, l.hooks[anyMethod]...), l.hooks[c.name]...) {
		done, after := hook(c, w)
		if done {
			return c
		}
		if after != nil {
			afters = append(afters, after)
		}
	}
	if propertyReads[c.name] && l.store.growing() {
		l.store.apply() // clones grow while on: a read sees their size as of now
	}
	rec := l.forward(r, body)
	for _, after := range afters {
		after(rec)
	}
	if !readOnlyMethods[c.name] {
		l.store.apply()
	}
	copyRecorded(w, rec)
	return c
}
