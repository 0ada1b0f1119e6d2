package main

// The thin HTTP layer in front of the simulator: request counting, session gate, latency, fault
// injection and linked-clone fix-ups for CloneVM_Task, storage figures, and the /lab control API.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/ioutil"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"
)

// figures are the storage numbers the lab keeps for every VM it knows.
type figures struct {
	capacity int64 // provisioned disk bytes
	used     int64 // bytes a full copy of this VM commits
	delta    int64 // bytes a linked clone of this VM commits
	linked   bool
	isParent bool // counted in the spec's free_gb already
	ds       types.ManagedObjectReference
	snapshot string // moref of the snapshot a linked clone was made from ("" otherwise)
}

func (f *figures) committed() int64 {
	if f.linked {
		return f.delta
	}
	return f.used
}

// Lab is the HTTP handler in front of the simulator's ServeMux.
type Lab struct {
	mux  *http.ServeMux
	inv  *inventory
	spec *Spec

	mu           sync.Mutex // guards everything below
	cloneLatency int
	destroyLat   int
	faults       FaultSpec
	rng          *rand.Rand
	requests     map[string]int
	busy         map[string]time.Duration // server-side time by method, injected latency excluded
	cloneWait    time.Duration            // time CloneVM_Task bodies queued for cloneMu
	total        int
	cloneCalls   int
	taskReads    int // RetrievePropertiesEx calls that read vim.Task properties
	// CloneVM_Task requests being answered now, and the most at once since the last reset.
	cloneInFlight, cloneInFlightMax int
	// SOAP requests being answered now, blocking waits (WaitForUpdates[Ex]) excepted: 0 means
	// the lab is idle (a killed client's last calls have finished their work).
	inFlight     int
	injected     int
	cloneOrdinal int
	sessions     map[string]bool
	pausedUntil  time.Time // SOAP connections are dropped until then (POST /lab/pause)
	dropped      int       // SOAP requests dropped while paused

	cloneMu sync.Mutex // serialises the body of CloneVM_Task (not its latency)
	figMu   sync.Mutex
	figs    map[types.ManagedObjectReference]*figures

	cust   *customizer // guest customization state (customize.go)
	grants *grants     // the user's privileges (privileges.go)
}

func newLab(spec *Spec, inv *inventory, mux *http.ServeMux) *Lab {
	l := &Lab{
		mux:          mux,
		inv:          inv,
		spec:         spec,
		cloneLatency: spec.CloneLatencyMS,
		destroyLat:   spec.DestroyLatencyMS,
		faults:       spec.Faults,
		rng:          rand.New(rand.NewSource(spec.Faults.Seed)),
		requests:     map[string]int{},
		busy:         map[string]time.Duration{},
		sessions:     map[string]bool{},
		figs:         map[types.ManagedObjectReference]*figures{},
		cust:         newCustomizer(spec),
		grants:       newGrants(spec.User, spec.Privileges),
	}
	for _, p := range inv.parents {
		l.figs[p.ref] = &figures{
			capacity: gbBytes(p.spec.DiskGB),
			used:     gbBytes(p.spec.UsedGB),
			delta:    gbBytes(p.spec.DeltaGB),
			isParent: true,
			ds:       p.datastore,
		}
	}
	l.applyFigures()
	return l
}

// ---------------------------------------------------------------------------------------------
// SOAP plumbing

var vim25TypeFunc = types.TypeFunc()

func typeFunc(name string) (reflect.Type, bool) {
	t, ok := vim25TypeFunc(name)
	if !ok {
		if parts := strings.SplitN(name, ":", 2); len(parts) == 2 {
			t, ok = vim25TypeFunc(parts[1])
		}
	}
	return t, ok
}

// soapMethodName returns the local name of the first element inside soapenv:Body.
func soapMethodName(body []byte) string {
	dec := xml.NewDecoder(bytes.NewReader(body))
	inBody := false
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		if se, ok := tok.(xml.StartElement); ok {
			if inBody {
				return se.Name.Local
			}
			if se.Name.Local == "Body" {
				inBody = true
			}
		}
	}
}

// The envelope types below copy the simulator's private ones (simulator.go) so the lab answers in
// the same dialect.
type soapEnvelope struct {
	XMLName xml.Name    `xml:"soapenv:Envelope"`
	Enc     string      `xml:"xmlns:soapenc,attr"`
	Env     string      `xml:"xmlns:soapenv,attr"`
	XSD     string      `xml:"xmlns:xsd,attr"`
	XSI     string      `xml:"xmlns:xsi,attr"`
	Body    interface{} `xml:"soapenv:Body"`
}

type faultDetail struct {
	Fault types.AnyType
}

type soapFault struct {
	XMLName xml.Name `xml:"soapenv:Fault"`
	Code    string   `xml:"faultcode"`
	String  string   `xml:"faultstring"`
	Detail  struct {
		Fault *faultDetail
	} `xml:"detail"`
}

func (d *faultDetail) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	kind := reflect.TypeOf(d.Fault).Elem().Name()
	start.Name.Local = kind + "Fault"
	start.Attr = append(start.Attr,
		xml.Attr{Name: xml.Name{Local: "xmlns"}, Value: "urn:vim25"},
		xml.Attr{Name: xml.Name{Local: "xsi:type"}, Value: kind})
	return e.EncodeElement(d.Fault, start)
}

type response struct {
	Body soap.HasFault
}

func (r *response) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	val := reflect.ValueOf(r.Body).Elem().FieldByName("Res")
	res := xml.StartElement{Name: xml.Name{Space: "urn:vim25", Local: val.Elem().Type().Name()}}
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	if err := e.EncodeElement(val.Interface(), res); err != nil {
		return err
	}
	return e.EncodeToken(start.End())
}

func writeEnvelope(w http.ResponseWriter, status int, body interface{}) {
	var out bytes.Buffer
	fmt.Fprint(&out, xml.Header)
	e := xml.NewEncoder(&out)
	err := e.Encode(&soapEnvelope{
		Enc:  "http://schemas.xmlsoap.org/soap/encoding/",
		Env:  "http://schemas.xmlsoap.org/soap/envelope/",
		XSD:  "http://www.w3.org/2001/XMLSchema",
		XSI:  "http://www.w3.org/2001/XMLSchema-instance",
		Body: body,
	})
	if err == nil {
		err = e.Flush()
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(out.Bytes())
}

func writeFault(w http.ResponseWriter, msg string, fault types.BaseMethodFault) {
	f := &soapFault{Code: "ServerFaultCode", String: msg}
	f.Detail.Fault = &faultDetail{Fault: fault}
	writeEnvelope(w, http.StatusInternalServerError, struct{ Fault *soapFault }{f})
}

// ---------------------------------------------------------------------------------------------
// HTTP entry point

// Methods a client may call without a session (everything else needs a live session cookie).
var noSessionMethods = map[string]bool{
	"RetrieveServiceContent": true, "Login": true, "LoginByToken": true,
	"LoginExtensionByCertificate": true, "LoginExtensionBySubjectName": true,
	"LoginBySSPI": true, "CloneSession": true,
}

// Properties anyone may Fetch without a session (pyVmomi sends <prop versionId="...">NAME</prop>).
var anonProps = regexp.MustCompile(`<prop[^>]*>content</prop>`)

// Methods that cannot change storage figures (no re-application after them).
var readOnlyMethods = map[string]bool{
	"Fetch": true, "RetrieveProperties": true, "RetrievePropertiesEx": true, "ContinueRetrievePropertiesEx": true,
	"CancelRetrievePropertiesEx": true, "WaitForUpdates": true, "WaitForUpdatesEx": true,
	"CheckForUpdates": true, "CreateFilter": true, "DestroyPropertyFilter": true,
	"CreatePropertyCollector": true, "DestroyPropertyCollector": true,
	"CreateContainerView": true, "CreateListView": true, "DestroyView": true,
	"RetrieveServiceContent": true, "CurrentTime": true, "Login": true, "Logout": true,
	"FindByInventoryPath": true, "FindChild": true, "FindByUuid": true, "SessionIsActive": true,
}

func (l *Lab) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/lab" || strings.HasPrefix(r.URL.Path, "/lab/") {
		l.serveControl(w, r)
		return
	}
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/sdk") {
		l.mux.ServeHTTP(w, r)
		return
	}
	// While paused (POST /lab/pause) vCenter is unreachable: a SOAP request that arrives, or
	// whose answer is ready, is dropped with its connection (the work it asked for may be done:
	// a lost reply), as when the network or vCenter goes away mid-run.
	if l.paused() {
		dropConnection(w)
		return
	}
	rec := httptest.NewRecorder()
	l.serveSOAP(rec, r)
	if l.paused() {
		dropConnection(w)
		return
	}
	copyRecorded(w, rec)
}

// paused tells whether SOAP requests are being dropped now, and counts one more if so.
func (l *Lab) paused() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if time.Now().Before(l.pausedUntil) {
		l.dropped++
		return true
	}
	return false
}

func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	http.Error(w, "lab paused", http.StatusServiceUnavailable)
}

func (l *Lab) serveSOAP(w http.ResponseWriter, r *http.Request) {
	body, err := ioutil.ReadAll(r.Body)
	_ = r.Body.Close()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	name := soapMethodName(body)
	// Server-side time for this request, less the latency the lab injects on purpose and (for
	// CloneVM_Task) the wait for cloneMu: what the lab itself spends on the method.
	started := time.Now()
	var excluded time.Duration
	defer func() {
		if name == "" {
			return
		}
		spent := time.Since(started) - excluded
		l.mu.Lock()
		l.busy[name] += spent
		l.mu.Unlock()
	}()
	l.mu.Lock()
	l.total++
	if name != "" {
		l.requests[name]++
	}
	if name != "WaitForUpdatesEx" && name != "WaitForUpdates" {
		l.inFlight++
		defer func() {
			l.mu.Lock()
			l.inFlight--
			l.mu.Unlock()
		}()
	}
	if name == "CloneVM_Task" {
		l.cloneCalls++
		l.cloneInFlight++
		if l.cloneInFlight > l.cloneInFlightMax {
			l.cloneInFlightMax = l.cloneInFlight
		}
		defer func() {
			l.mu.Lock()
			l.cloneInFlight--
			l.mu.Unlock()
		}()
	}
	if name == "RetrievePropertiesEx" && bytes.Contains(body, []byte("<type>Task</type>")) {
		l.taskReads++ // a read of tasks' own state: waiting, not reading the inventory
	}
	cookie := ""
	if c, err := r.Cookie(soap.SessionCookieName); err == nil {
		cookie = c.Value
	}
	valid := cookie != "" && l.sessions[cookie]
	l.mu.Unlock()

	if !valid {
		// Unknown or expired session: the simulator must not see the stale cookie (it would still
		// accept it, and refuse a new Login while it is present).
		r.Header.Del("Cookie")
		// As on vCenter, a client may read ServiceInstance.content before logging in. Anything
		// else, SessionManager.currentSession included, needs a session (as in the simulator).
		anonRead := name == "Fetch" && anonProps.Match(body)
		if !noSessionMethods[name] && name != "" && !anonRead {
			writeFault(w, "The session is not authenticated.", &types.NotAuthenticated{
				NoPermission: types.NoPermission{
					Object:      types.ManagedObjectReference{Type: "ServiceInstance", Value: "ServiceInstance"},
					PrivilegeId: "System.View",
				},
			})
			return
		}
	}

	if privilegeMethods[name] && l.handlePrivileges(w, body) {
		return
	}
	switch name {
	case "CloneVM_Task":
		excluded = l.handleClone(w, r, body)
		return
	case "CustomizeVM_Task":
		if l.rejectCustomize(w, body) {
			return
		}
	case "Destroy_Task":
		if strings.Contains(string(body), "VirtualMachine") {
			excluded = l.sleep(func() int { return l.destroyLat })
		}
	}
	after := l.beforeMethod(name, body) // customization, DRS clean-up (customize.go)
	rec := l.forward(r, body)
	if after != nil {
		after(rec)
	}
	switch name {
	case "Login", "LoginByToken", "CloneSession", "LoginExtensionByCertificate", "LoginExtensionBySubjectName":
		if rec.Code == http.StatusOK {
			for _, c := range rec.Result().Cookies() {
				if c.Name == soap.SessionCookieName {
					l.mu.Lock()
					l.sessions[c.Value] = true
					l.mu.Unlock()
				}
			}
		}
	case "Logout":
		l.mu.Lock()
		delete(l.sessions, cookie)
		l.mu.Unlock()
	}
	if !readOnlyMethods[name] {
		l.applyFigures()
	}
	copyRecorded(w, rec)
}

// sleep waits the injected latency ms() and returns how long it slept.
func (l *Lab) sleep(ms func() int) time.Duration {
	l.mu.Lock()
	d := ms()
	l.mu.Unlock()
	if d <= 0 {
		return 0
	}
	started := time.Now()
	time.Sleep(time.Duration(d) * time.Millisecond)
	return time.Since(started)
}

func (l *Lab) forward(r *http.Request, body []byte) (rec *httptest.ResponseRecorder) {
	r2 := r.Clone(r.Context())
	r2.Body = ioutil.NopCloser(bytes.NewReader(body))
	r2.ContentLength = int64(len(body))
	rec = httptest.NewRecorder()
	defer func() {
		if p := recover(); p != nil {
			// The simulator's PropertyCollector.Fetch (pyvmomi's property accessor) panics on an
			// unset property such as vm.snapshot of a VM without snapshots; vCenter answers with
			// no value. Anything else becomes a SystemError fault instead of a dropped connection.
			rec = httptest.NewRecorder()
			if soapMethodName(body) == "Fetch" {
				writeEmptyFetch(rec)
				return
			}
			writeFault(rec, fmt.Sprintf("lab simulator error: %v", p), &types.SystemError{Reason: fmt.Sprint(p)})
		}
	}()
	l.mux.ServeHTTP(rec, r2)
	return rec
}

// writeEmptyFetch answers a Fetch with no value, as vCenter does for an unset property.
func writeEmptyFetch(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, xml.Header+`<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/"`+
		` xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"`+
		` xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">`+
		`<soapenv:Body><FetchResponse xmlns="urn:vim25"></FetchResponse></soapenv:Body></soapenv:Envelope>`)
}

func copyRecorded(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// ---------------------------------------------------------------------------------------------
// CloneVM_Task

func faultFor(name string, req *types.CloneVM_Task, src *simulator.VirtualMachine, disk string) types.BaseMethodFault {
	switch name {
	case "FileLocked":
		return &types.FileLocked{FileFault: types.FileFault{File: disk}}
	case "InsufficientDiskSpace", "InsufficientStorageSpace":
		// vSphere has no "InsufficientDiskSpace" type: the name is an alias of the real
		// InsufficientStorageSpace fault (vim.fault.InsufficientStorageSpace).
		return &types.InsufficientStorageSpace{}
	case "NoDiskSpace":
		return &types.NoDiskSpace{FileFault: types.FileFault{File: disk}, Datastore: strings.Trim(strings.SplitN(disk, "]", 2)[0], "[")}
	case "DuplicateName":
		return &types.DuplicateName{Name: req.Name, Object: req.Folder}
	case "TaskInProgress":
		return &types.TaskInProgress{}
	case "HostCommunication":
		return &types.HostCommunication{}
	case "Timedout":
		return &types.Timedout{}
	case "InvalidArgument":
		return &types.InvalidArgument{InvalidProperty: "spec"}
	case "InvalidState":
		return &types.InvalidState{}
	case "ResourceInUse":
		return &types.ResourceInUse{Type: "VirtualMachine", Name: src.Name}
	default:
		return &types.SystemError{Reason: "fault injected by the lab"}
	}
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

func vmDisks(devices []types.BaseVirtualDevice) []*types.VirtualDisk {
	var out []*types.VirtualDisk
	for _, d := range devices {
		if vd, ok := d.(*types.VirtualDisk); ok {
			out = append(out, vd)
		}
	}
	return out
}

func firstDiskFile(vm *simulator.VirtualMachine) string {
	for _, d := range vmDisks(vm.Config.Hardware.Device) {
		if b, ok := d.Backing.(types.BaseVirtualDeviceFileBackingInfo); ok {
			return b.GetVirtualDeviceFileBackingInfo().FileName
		}
	}
	return ""
}

// handleClone answers a CloneVM_Task; it returns the time not spent working on it (the injected
// latency and the wait for cloneMu), which serveSOAP leaves out of busy_ms.
func (l *Lab) handleClone(w http.ResponseWriter, r *http.Request, body []byte) (idle time.Duration) {
	method, err := simulator.UnmarshalBody(typeFunc, body)
	if err != nil {
		copyRecorded(w, l.forward(r, body))
		return 0
	}
	req, ok := method.Body.(*types.CloneVM_Task)
	if !ok {
		copyRecorded(w, l.forward(r, body))
		return 0
	}
	idle = l.sleep(func() int { return l.cloneLatency })

	queued := time.Now()
	l.cloneMu.Lock()
	defer l.cloneMu.Unlock()
	waited := time.Since(queued)
	idle += waited
	l.mu.Lock()
	l.cloneWait += waited
	l.mu.Unlock()

	l.mu.Lock()
	l.cloneOrdinal++
	inject := false
	for _, n := range l.faults.FailNth {
		if n == l.cloneOrdinal {
			inject = true
		}
	}
	if l.faults.FailFraction > 0 && l.rng.Float64() < l.faults.FailFraction {
		inject = true
	}
	fullCopy := false
	for _, n := range l.faults.FullCopyNth {
		if n == l.cloneOrdinal {
			fullCopy = true
		}
	}
	faultName := l.faults.Fault
	l.mu.Unlock()

	src, ok := simulator.Map.Get(req.This).(*simulator.VirtualMachine)
	if !ok {
		copyRecorded(w, l.forward(r, body)) // the simulator answers ManagedObjectNotFound
		return
	}
	if inject {
		l.mu.Lock()
		l.injected++
		l.mu.Unlock()
		l.failTask(w, src, req, faultFor(faultName, req, src, firstDiskFile(src)))
		return
	}
	folder, ok := simulator.Map.Get(req.Folder).(*simulator.Folder)
	if !ok {
		copyRecorded(w, l.forward(r, body))
		return
	}
	var existing mo.Entity
	simulator.Map.WithLock(folder, func() { existing = simulator.Map.FindByName(req.Name, folder.ChildEntity) })
	if existing != nil {
		l.failTask(w, src, req, &types.DuplicateName{Name: req.Name, Object: existing.Reference()})
		return
	}
	if req.Spec.Snapshot != nil {
		snap, ok := simulator.Map.Get(*req.Spec.Snapshot).(*simulator.VirtualMachineSnapshot)
		if !ok || snap.Vm != req.This {
			l.failTask(w, src, req, &types.InvalidArgument{InvalidProperty: "spec.snapshot"})
			return
		}
	}
	if fault := l.checkCloneCustomization(req, src); fault != nil {
		l.failTask(w, src, req, fault)
		return
	}

	// The simulator's CloneVM_Task edits the source's device objects in place (disk file name,
	// keys...). Give it deep copies to chew on and put the originals back afterwards.
	var orig []types.BaseVirtualDevice
	simulator.Map.WithLock(src, func() {
		orig = src.Config.Hardware.Device
		src.Config.Hardware.Device = deepCopy(reflect.ValueOf(orig)).Interface().([]types.BaseVirtualDevice)
	})
	rec := l.forward(r, body)
	simulator.Map.WithLock(src, func() { src.Config.Hardware.Device = orig })

	var cloneEnt mo.Entity
	simulator.Map.WithLock(folder, func() { cloneEnt = simulator.Map.FindByName(req.Name, folder.ChildEntity) })
	if clone, ok := cloneEnt.(*simulator.VirtualMachine); ok && rec.Code == http.StatusOK {
		l.fixClone(req, src, orig, clone, fullCopy)
		l.applyCloneCustomization(req, clone)
	}
	l.applyFigures()
	copyRecorded(w, rec)
	return idle
}

// fixClone makes the simulator's clone look like what vCenter would have made.
func (l *Lab) fixClone(req *types.CloneVM_Task, src *simulator.VirtualMachine, srcDevices []types.BaseVirtualDevice,
	clone *simulator.VirtualMachine, fullCopy bool) {
	createChild := string(types.VirtualMachineRelocateDiskMoveOptionsCreateNewChildDiskBacking)
	linkedReq := req.Spec.Snapshot != nil && req.Spec.Location.DiskMoveType == createChild && !fullCopy
	srcDisks := vmDisks(srcDevices)
	allLinked := true
	var capacity int64

	simulator.Map.WithLock(clone, func() {
		cloneDisks := vmDisks(clone.Config.Hardware.Device)
		if len(cloneDisks) == 0 {
			allLinked = false
		}
		for i, cd := range cloneDisks {
			capacity += cd.CapacityInBytes
			if cd.CapacityInBytes == 0 {
				capacity += cd.CapacityInKB * 1024
			}
			b, ok := cd.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
			if !ok || i >= len(srcDisks) {
				allLinked = false
				continue
			}
			linked := linkedReq
			for _, loc := range req.Spec.Location.Disk {
				if loc.DiskId == srcDisks[i].Key && loc.DiskMoveType != createChild {
					linked = false // a per-disk locator overrides diskMoveType: full copy
				}
			}
			pb, ok := srcDisks[i].Backing.(*types.VirtualDiskFlatVer2BackingInfo)
			if !linked || !ok {
				b.Parent = nil
				allLinked = false
				continue
			}
			parent := &types.VirtualDiskFlatVer2BackingInfo{
				VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{
					FileName:  pb.FileName,
					Datastore: pb.Datastore,
				},
				DiskMode:        pb.DiskMode,
				ThinProvisioned: types.NewBool(true),
				Uuid:            pb.Uuid,
			}
			b.Parent = parent
			b.ThinProvisioned = types.NewBool(true)
			b.DeltaDiskFormat = "redoLogFormat"
		}

		// A fresh identity per clone, as vCenter gives.
		changes := []types.PropertyChange{}
		if req.Spec.Config == nil || req.Spec.Config.InstanceUuid == "" {
			id := uuid.New().String()
			changes = append(changes,
				types.PropertyChange{Name: "config.instanceUuid", Val: id},
				types.PropertyChange{Name: "summary.config.instanceUuid", Val: id})
		}
		if req.Spec.Config == nil || req.Spec.Config.Uuid == "" {
			id := uuid.New().String()
			changes = append(changes,
				types.PropertyChange{Name: "config.uuid", Val: id},
				types.PropertyChange{Name: "summary.config.uuid", Val: id})
		}
		// The clone's Notes come from the clone spec (the simulator drops them).
		if req.Spec.Config != nil && req.Spec.Config.Annotation != "" {
			changes = append(changes,
				types.PropertyChange{Name: "config.annotation", Val: req.Spec.Config.Annotation},
				types.PropertyChange{Name: "summary.config.annotation", Val: req.Spec.Config.Annotation})
		}
		simulator.Map.Update(clone, changes)
	})

	l.placeClone(req, clone)

	// Storage figures follow the source's.
	l.figMu.Lock()
	srcFig := l.figs[src.Self]
	fig := &figures{capacity: capacity, linked: allLinked}
	if allLinked && req.Spec.Snapshot != nil {
		fig.snapshot = req.Spec.Snapshot.Value
	}
	if srcFig != nil {
		fig.used, fig.delta = srcFig.used, srcFig.delta
		if fig.used > capacity {
			fig.used = capacity
		}
	}
	fig.ds = l.datastoreOf(clone)
	l.figs[clone.Self] = fig
	l.figMu.Unlock()
}

func (l *Lab) datastoreOf(vm *simulator.VirtualMachine) types.ManagedObjectReference {
	p := object.DatastorePath{}
	if p.FromString(vm.Config.Files.VmPathName) {
		if ref, ok := l.inv.datastores[p.Datastore]; ok {
			return ref
		}
	}
	if len(vm.Datastore) > 0 {
		return vm.Datastore[0]
	}
	return types.ManagedObjectReference{}
}

// placeClone puts the clone on location.host, or on the least loaded host of its pool's cluster.
func (l *Lab) placeClone(req *types.CloneVM_Task, clone *simulator.VirtualMachine) {
	var target types.ManagedObjectReference
	if req.Spec.Location.Host != nil {
		target = *req.Spec.Location.Host
	} else {
		var hosts []types.ManagedObjectReference
		if clone.ResourcePool != nil {
			if rp, ok := simulator.Map.Get(*clone.ResourcePool).(*simulator.ResourcePool); ok {
				if cr, ok := simulator.Map.Get(rp.Owner).(*simulator.ClusterComputeResource); ok {
					hosts = cr.Host
				}
			}
		}
		best := -1
		for _, h := range hosts {
			hs, ok := simulator.Map.Get(h).(*simulator.HostSystem)
			if !ok {
				continue
			}
			n := 0
			for _, v := range hs.Vm {
				if v != clone.Self {
					n++
				}
			}
			if best < 0 || n < best {
				best, target = n, h
			}
		}
		if best < 0 {
			return
		}
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

// applyFigures re-imposes the storage figures of every VM and the datastores' free space.
func (l *Lab) applyFigures() {
	l.figMu.Lock()
	defer l.figMu.Unlock()
	now := time.Now()
	used := map[types.ManagedObjectReference]int64{}
	for ref, fig := range l.figs {
		vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine)
		if !ok {
			delete(l.figs, ref)
			continue
		}
		committed := fig.committed()
		uncommitted := fig.capacity - committed
		if uncommitted < 0 {
			uncommitted = 0
		}
		if !fig.isParent {
			used[fig.ds] += committed
		}
		simulator.Map.WithLock(vm, func() {
			used[fig.ds] += swapBytes(vm) // a powered-on VM's .vswp file
			s := vm.Summary.Storage
			if s != nil && s.Committed == committed && s.Uncommitted == uncommitted && s.Unshared == committed {
				return
			}
			simulator.Map.Update(vm, []types.PropertyChange{
				{Name: "summary.storage", Val: &types.VirtualMachineStorageSummary{
					Committed: committed, Uncommitted: uncommitted, Unshared: committed, Timestamp: now,
				}},
				{Name: "storage", Val: &types.VirtualMachineStorageInfo{
					PerDatastoreUsage: []types.VirtualMachineUsageOnDatastore{{
						Datastore: fig.ds, Committed: committed, Uncommitted: uncommitted, Unshared: committed,
					}},
					Timestamp: now,
				}},
			})
		})
	}
	for ref, base := range l.inv.dsBaseFree {
		ds, ok := simulator.Map.Get(ref).(*simulator.Datastore)
		if !ok {
			continue
		}
		free := base - used[ref]
		if free < 0 {
			free = 0
		}
		capacity := l.inv.dsCapacity[ref]
		simulator.Map.WithLock(ds, func() {
			info := ds.Info.GetDatastoreInfo()
			info.FreeSpace = free
			info.MaxFileSize = free
			info.MaxVirtualDiskCapacity = capacity
			if ds.Summary.FreeSpace == free && ds.Summary.Capacity == capacity {
				return
			}
			simulator.Map.Update(ds, []types.PropertyChange{
				{Name: "summary.capacity", Val: capacity},
				{Name: "summary.freeSpace", Val: free},
			})
		})
	}
}

// deepCopy copies pointers, slices, maps and interfaces recursively (exported fields only;
// structs are first copied whole so unexported fields such as time.Time's survive).
func deepCopy(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Ptr:
		if v.IsNil() {
			return reflect.Zero(v.Type())
		}
		n := reflect.New(v.Elem().Type())
		n.Elem().Set(deepCopy(v.Elem()))
		return n
	case reflect.Interface:
		if v.IsNil() {
			return reflect.Zero(v.Type())
		}
		n := reflect.New(v.Type()).Elem()
		n.Set(deepCopy(v.Elem()))
		return n
	case reflect.Struct:
		n := reflect.New(v.Type()).Elem()
		n.Set(v)
		t := v.Type()
		for i := 0; i < v.NumField(); i++ {
			if t.Field(i).PkgPath != "" {
				continue
			}
			n.Field(i).Set(deepCopy(v.Field(i)))
		}
		return n
	case reflect.Slice:
		if v.IsNil() {
			return reflect.Zero(v.Type())
		}
		n := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := 0; i < v.Len(); i++ {
			n.Index(i).Set(deepCopy(v.Index(i)))
		}
		return n
	case reflect.Map:
		if v.IsNil() {
			return reflect.Zero(v.Type())
		}
		n := reflect.MakeMapWithSize(v.Type(), v.Len())
		for _, k := range v.MapKeys() {
			n.SetMapIndex(k, deepCopy(v.MapIndex(k)))
		}
		return n
	default:
		return v
	}
}

// ---------------------------------------------------------------------------------------------
// /lab control API

// msOf is d in milliseconds, to 0.01 ms.
func msOf(d time.Duration) float64 {
	return float64(d.Round(10*time.Microsecond)) / float64(time.Millisecond)
}

func writeJSON(w http.ResponseWriter, status int, v interface{}) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

func jsonError(w http.ResponseWriter, status int, format string, args ...interface{}) {
	writeJSON(w, status, map[string]string{"error": fmt.Sprintf(format, args...)})
}

func (l *Lab) serveControl(w http.ResponseWriter, r *http.Request) {
	route := r.Method + " " + strings.TrimSuffix(r.URL.Path, "/")
	switch route {
	case "GET /lab", "GET /lab/info":
		writeJSON(w, http.StatusOK, map[string]interface{}{
			"datacenter": l.spec.Datacenter, "user": l.spec.User,
			"endpoints": []string{"GET /lab/stats", "POST /lab/reset", "POST /lab/config",
				"GET /lab/config", "POST /lab/expire-sessions", "GET /lab/vms", "POST /lab/vms",
				"POST /lab/pause"},
		})
	case "GET /lab/stats":
		l.mu.Lock()
		reqs := map[string]int{}
		for k, v := range l.requests {
			reqs[k] = v
		}
		busy := map[string]float64{}
		for k, v := range l.busy {
			busy[k] = msOf(v)
		}
		out := map[string]interface{}{
			"requests": reqs, "total": l.total, "clone_calls": l.cloneCalls, "task_reads": l.taskReads,
			"clone_calls_in_flight_max": l.cloneInFlightMax, "requests_in_flight": l.inFlight,
			"busy_ms": busy, "clone_lock_wait_ms": msOf(l.cloneWait),
			"clones_failed_injected": l.injected, "sessions": len(l.sessions),
			"dropped": l.dropped, "paused": time.Now().Before(l.pausedUntil),
		}
		l.mu.Unlock()
		writeJSON(w, http.StatusOK, out)
	case "POST /lab/reset":
		l.mu.Lock()
		l.requests = map[string]int{}
		l.busy = map[string]time.Duration{}
		l.cloneWait = 0
		l.total, l.cloneCalls, l.injected, l.cloneOrdinal, l.dropped = 0, 0, 0, 0, 0
		l.taskReads, l.cloneInFlightMax = 0, l.cloneInFlight
		l.rng = rand.New(rand.NewSource(l.faults.Seed))
		l.mu.Unlock()
		l.cust.reset()
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	case "GET /lab/config":
		writeJSON(w, http.StatusOK, l.config())
	case "POST /lab/config":
		if err := l.configure(r.Body); err != nil {
			jsonError(w, http.StatusBadRequest, "%v", err)
			return
		}
		writeJSON(w, http.StatusOK, l.config())
	case "POST /lab/pause":
		var req struct {
			Seconds *float64 `json:"seconds"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Seconds == nil || *req.Seconds < 0 {
			jsonError(w, http.StatusBadRequest, `pause takes {"seconds": N} with N >= 0 (0 resumes)`)
			return
		}
		l.mu.Lock()
		l.pausedUntil = time.Now().Add(time.Duration(*req.Seconds * float64(time.Second)))
		l.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]interface{}{"paused": *req.Seconds > 0, "seconds": *req.Seconds})
	case "POST /lab/expire-sessions":
		l.mu.Lock()
		n := len(l.sessions)
		l.sessions = map[string]bool{}
		l.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]int{"expired": n})
	case "GET /lab/vms":
		writeJSON(w, http.StatusOK, l.listVMs())
	case "POST /lab/vms":
		vm, status, err := l.addVM(r.Body)
		if err != nil {
			jsonError(w, status, "%v", err)
			return
		}
		writeJSON(w, http.StatusOK, vm)
	default:
		jsonError(w, http.StatusNotFound, "no such control endpoint: %s", route)
	}
}

func (l *Lab) config() map[string]interface{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	nth := l.faults.FailNth
	if nth == nil {
		nth = []int{}
	}
	fullNth := l.faults.FullCopyNth
	if fullNth == nil {
		fullNth = []int{}
	}
	failNames := l.faults.CustomizationFailNames
	if failNames == nil {
		failNames = []string{}
	}
	custNth := l.faults.CustomizationFailNth
	if custNth == nil {
		custNth = []int{}
	}
	l.cust.mu.Lock()
	custLatency := l.cust.latency
	l.cust.mu.Unlock()
	return map[string]interface{}{
		"clone_latency_ms": l.cloneLatency, "destroy_latency_ms": l.destroyLat,
		"customization_latency_ms": custLatency, "privileges": l.grants.current(),
		"faults": map[string]interface{}{
			"customization_fail_names": failNames, "customization_fail_nth": custNth,
			"fail_nth": nth, "fail_fraction": l.faults.FailFraction,
			"fault": l.faults.Fault, "seed": l.faults.Seed, "full_copy_nth": fullNth,
		},
	}
}

func (l *Lab) configure(body io.Reader) error {
	data, err := ioutil.ReadAll(body)
	if err != nil {
		return err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("config must be a JSON object: %v", err)
	}
	if err := checkKeys("config", raw, []string{"clone_latency_ms", "destroy_latency_ms", "faults",
		"customization_latency_ms", "privileges"}); err != nil {
		return err
	}
	var privileges []string // JSON null: every privilege again
	_, setPrivileges := raw["privileges"]
	if setPrivileges {
		if err := json.Unmarshal(raw["privileges"], &privileges); err != nil {
			return fmt.Errorf("privileges must be a list of privilege ids, or null for all")
		}
		if err := validatePrivileges(privileges); err != nil {
			return err
		}
	}
	var upd struct {
		CloneLatencyMS   *int `json:"clone_latency_ms"`
		DestroyLatencyMS *int `json:"destroy_latency_ms"`
		CustLatencyMS    *int `json:"customization_latency_ms"`
	}
	if err := json.Unmarshal(data, &upd); err != nil {
		return fmt.Errorf("config has a field of the wrong type: %v", err)
	}
	if (upd.CloneLatencyMS != nil && *upd.CloneLatencyMS < 0) || (upd.DestroyLatencyMS != nil && *upd.DestroyLatencyMS < 0) ||
		(upd.CustLatencyMS != nil && *upd.CustLatencyMS < 0) {
		return fmt.Errorf("latencies must be 0 or more")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	faults := l.faults
	reseed := false
	if f, ok := raw["faults"]; ok {
		var fraw map[string]json.RawMessage
		if err := json.Unmarshal(f, &fraw); err != nil {
			return fmt.Errorf("faults must be an object")
		}
		if err := checkKeys("faults", fraw, faultKeys); err != nil {
			return err
		}
		if _, ok := fraw["customization_fail_names"]; ok {
			faults.CustomizationFailNames = nil
		}
		if _, ok := fraw["customization_fail_nth"]; ok {
			faults.CustomizationFailNth = nil
		}
		if _, ok := fraw["fail_nth"]; ok {
			faults.FailNth = nil
		}
		if _, ok := fraw["full_copy_nth"]; ok {
			faults.FullCopyNth = nil
		}
		if err := json.Unmarshal(f, &faults); err != nil {
			return fmt.Errorf("faults has a field of the wrong type: %v", err)
		}
		if err := faults.validate(); err != nil {
			return err
		}
		_, reseed = fraw["seed"]
	}
	l.faults = faults
	if reseed {
		l.rng = rand.New(rand.NewSource(faults.Seed))
	}
	if upd.CloneLatencyMS != nil {
		l.cloneLatency = *upd.CloneLatencyMS
	}
	if upd.DestroyLatencyMS != nil {
		l.destroyLat = *upd.DestroyLatencyMS
	}
	if upd.CustLatencyMS != nil {
		l.cust.mu.Lock()
		l.cust.latency = *upd.CustLatencyMS
		l.cust.mu.Unlock()
	}
	if setPrivileges {
		l.grants.set(privileges)
	}
	return nil
}

// folderPath returns a VM folder's path relative to the datacenter's vm folder ("" for the root).
func (l *Lab) folderPath(ref *types.ManagedObjectReference) string {
	if ref == nil {
		return ""
	}
	for path, r := range l.inv.vmFolders {
		if r == *ref {
			return path
		}
	}
	return entityName(ref)
}

func (l *Lab) customFieldNames() map[int32]string {
	names := map[int32]string{}
	m := simulator.Map.CustomFieldsManager()
	simulator.Map.WithLock(m, func() {
		for _, f := range m.Field {
			names[f.Key] = f.Name
		}
	})
	return names
}

func (l *Lab) vmEntry(vm *simulator.VirtualMachine, fields map[int32]string) map[string]interface{} {
	var out map[string]interface{}
	simulator.Map.WithLock(vm, func() {
		linked := false
		parent := ""
		disks := vmDisks(vm.Config.Hardware.Device)
		for _, d := range disks {
			if b, ok := d.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok && b.Parent != nil {
				linked = true
				for name, p := range l.inv.parents {
					if p.diskFile == b.Parent.FileName {
						parent = name
					}
				}
			}
		}
		var committed int64
		if vm.Summary.Storage != nil {
			committed = vm.Summary.Storage.Committed
		}
		custom := map[string]string{}
		for _, cv := range vm.CustomValue {
			if s, ok := cv.(*types.CustomFieldStringValue); ok {
				name := fields[s.Key]
				if name == "" {
					name = fmt.Sprint(s.Key)
				}
				custom[name] = s.Value
			}
		}
		snapshots := 0
		var count func([]types.VirtualMachineSnapshotTree)
		count = func(list []types.VirtualMachineSnapshotTree) {
			for _, s := range list {
				snapshots++
				count(s.ChildSnapshotList)
			}
		}
		if vm.Snapshot != nil {
			count(vm.Snapshot.RootSnapshotList)
		}
		cluster := ""
		if vm.ResourcePool != nil {
			if rp, ok := simulator.Map.Get(*vm.ResourcePool).(*simulator.ResourcePool); ok {
				cluster = entityName(&rp.Owner)
			}
		}
		_, isParent := l.inv.parentByRef[vm.Self]
		out = map[string]interface{}{
			"name": vm.Name, "moref": vm.Self.Value, "folder": l.folderPath(vm.Parent),
			"host": entityName(vm.Runtime.Host), "cluster": cluster,
			"power_state": string(vm.Runtime.PowerState), "linked": linked, "parent": parent,
			"committed": committed, "is_parent": isParent, "snapshots": snapshots,
			"custom": custom, "instance_uuid": vm.Config.InstanceUuid, "disks": len(disks),
			"disk_modes": diskModes(vm), "guest_hostname": guestHostName(vm),
			"memory_mb": vm.Config.Hardware.MemoryMB, "notes": vm.Config.Annotation,
		}
	})
	out["customization"] = l.cust.state(vm.Self)
	out["snapshot"] = ""
	l.figMu.Lock()
	if fig := l.figs[vm.Self]; fig != nil {
		out["snapshot"] = fig.snapshot
	}
	l.figMu.Unlock()
	return out
}

func (l *Lab) listVMs() []map[string]interface{} {
	fields := l.customFieldNames()
	out := []map[string]interface{}{}
	for _, e := range simulator.Map.All("VirtualMachine") {
		if vm, ok := e.(*simulator.VirtualMachine); ok {
			out = append(out, l.vmEntry(vm, fields))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a["name"] != b["name"] {
			return a["name"].(string) < b["name"].(string)
		}
		return a["moref"].(string) < b["moref"].(string)
	})
	return out
}

type addVMRequest struct {
	Name       string            `json:"name"`
	Folder     string            `json:"folder"`
	ParentLike string            `json:"parent_like"`
	Custom     map[string]string `json:"custom"`
	PowerState string            `json:"power_state"`
	Host       string            `json:"host"`
	Linked     bool              `json:"linked"`
}

func (l *Lab) addVM(body io.Reader) (map[string]interface{}, int, error) {
	var req addVMRequest
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("bad request: %v", err)
	}
	if req.Name == "" {
		return nil, http.StatusBadRequest, fmt.Errorf("name is required")
	}
	folderRef, ok := l.inv.vmFolders[req.Folder]
	if !ok {
		return nil, http.StatusBadRequest, fmt.Errorf("unknown folder %q", req.Folder)
	}
	if req.ParentLike == "" {
		req.ParentLike = l.spec.Parents[0].Name
	}
	like, ok := l.inv.parents[req.ParentLike]
	if !ok {
		return nil, http.StatusBadRequest, fmt.Errorf("unknown parent_like %q", req.ParentLike)
	}
	if req.PowerState != "" && req.PowerState != "poweredOn" && req.PowerState != "poweredOff" {
		return nil, http.StatusBadRequest, fmt.Errorf("power_state must be poweredOn or poweredOff")
	}
	folder := simulator.Map.Get(folderRef).(*simulator.Folder)
	var existing mo.Entity
	simulator.Map.WithLock(folder, func() { existing = simulator.Map.FindByName(req.Name, folder.ChildEntity) })
	if existing != nil {
		return nil, http.StatusConflict, fmt.Errorf("a VM or folder named %q already exists in folder %q", req.Name, req.Folder)
	}
	var host *types.ManagedObjectReference
	if req.Host != "" {
		for _, e := range simulator.Map.All("HostSystem") {
			if e.Entity().Name == req.Host {
				ref := e.Reference()
				host = &ref
			}
		}
		if host == nil {
			return nil, http.StatusBadRequest, fmt.Errorf("unknown host %q", req.Host)
		}
	}
	ctx := context.Background()
	l.cloneMu.Lock()
	defer l.cloneMu.Unlock()
	info, err := createVM(ctx, l.inv, like.spec, req.Name, folderRef, host)
	if err != nil {
		return nil, http.StatusInternalServerError, err
	}
	vm := simulator.Map.Get(info.ref).(*simulator.VirtualMachine)
	if req.Linked {
		simulator.Map.WithLock(vm, func() {
			for _, d := range vmDisks(vm.Config.Hardware.Device) {
				if b, ok := d.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok {
					b.Parent = &types.VirtualDiskFlatVer2BackingInfo{
						VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{
							FileName: like.diskFile, Datastore: &like.datastore,
						},
						DiskMode:        string(types.VirtualDiskModePersistent),
						ThinProvisioned: types.NewBool(true),
					}
				}
			}
		})
	}
	if len(req.Custom) > 0 {
		cfm := object.NewCustomFieldsManager(l.inv.client)
		names := make([]string, 0, len(req.Custom))
		for k := range req.Custom {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, name := range names {
			key, err := cfm.FindKey(ctx, name)
			if err != nil {
				def, aerr := cfm.Add(ctx, name, "VirtualMachine", nil, nil)
				if aerr != nil {
					return nil, http.StatusInternalServerError, fmt.Errorf("custom field %s: %v", name, aerr)
				}
				key = def.Key
			}
			if err := cfm.Set(ctx, info.ref, key, req.Custom[name]); err != nil {
				return nil, http.StatusInternalServerError, fmt.Errorf("set custom field %s: %v", name, err)
			}
		}
	}
	if req.PowerState == "poweredOn" {
		task, err := object.NewVirtualMachine(l.inv.client, info.ref).PowerOn(ctx)
		if err == nil {
			err = task.Wait(ctx)
		}
		if err != nil {
			return nil, http.StatusInternalServerError, fmt.Errorf("power on: %v", err)
		}
	}
	l.figMu.Lock()
	l.figs[info.ref] = &figures{
		capacity: gbBytes(like.spec.DiskGB), used: gbBytes(like.spec.UsedGB),
		delta: gbBytes(like.spec.DeltaGB), linked: req.Linked, ds: like.datastore,
	}
	l.figMu.Unlock()
	l.applyFigures()
	return l.vmEntry(vm, l.customFieldNames()), http.StatusOK, nil
}
