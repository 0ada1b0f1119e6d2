package main

// Test helpers: a lab built in the test's process from default-spec.json, served by
// net/http/httptest, reached over real SOAP by govmomi's client and over HTTP for /lab.
// The simulator keeps its objects in a global registry, so the tests run one lab at a time
// (none of them calls t.Parallel).

import (
	"bytes"
	"context"
	"encoding/json"
	"io/ioutil"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// TestMain keeps the simulator's log lines out of the test output.
func TestMain(m *testing.M) {
	log.SetOutput(ioutil.Discard)
	os.Exit(m.Run())
}

const linkedMove = string(types.VirtualMachineRelocateDiskMoveOptionsCreateNewChildDiskBacking)

type testLab struct {
	t      *testing.T
	built  *builtLab
	server *httptest.Server
}

func bundledSpec(t *testing.T) *Spec {
	t.Helper()
	spec, err := LoadSpec("default-spec.json")
	if err != nil {
		t.Fatalf("default spec: %v", err)
	}
	return spec
}

// startLab serves a lab built from the default spec, changed by edit (if any).
func startLab(t *testing.T, edit func(*Spec)) *testLab {
	t.Helper()
	spec := bundledSpec(t)
	if edit != nil {
		edit(spec)
	}
	server := httptest.NewUnstartedServer(nil)
	built, err := buildLab(spec, server.Listener.Addr().String())
	if err != nil {
		server.Close()
		t.Fatalf("build lab: %v", err)
	}
	server.Config.Handler = built.lab
	server.Start()
	t.Cleanup(func() {
		server.Close()
		built.close()
	})
	return &testLab{t: t, built: built, server: server}
}

func (tl *testLab) sdkURL() *url.URL {
	u, _ := url.Parse(tl.server.URL + "/sdk")
	return u
}

// connect logs in as the spec's user.
func (tl *testLab) connect() *vim25.Client {
	tl.t.Helper()
	u := tl.sdkURL()
	u.User = url.UserPassword(tl.built.lab.spec.User, tl.built.lab.spec.Password)
	c, err := govmomi.NewClient(context.Background(), u, true)
	if err != nil {
		tl.t.Fatalf("login: %v", err)
	}
	return c.Client
}

// anonymous is a client that has not logged in.
func (tl *testLab) anonymous() *vim25.Client {
	tl.t.Helper()
	c, err := vim25.NewClient(context.Background(), soap.NewClient(tl.sdkURL(), true))
	if err != nil {
		tl.t.Fatalf("client: %v", err)
	}
	return c
}

// call sends a control request (body encoded as JSON unless nil) and decodes the answer into out
// (unless nil); it returns the HTTP status.
func (tl *testLab) call(method, path string, body, out interface{}) int {
	tl.t.Helper()
	var data []byte
	if body != nil {
		data, _ = json.Marshal(body)
	}
	req, _ := http.NewRequest(method, tl.server.URL+path, bytes.NewReader(data))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tl.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			tl.t.Fatalf("%s %s: decode: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

// mustCall is call that expects 200.
func (tl *testLab) mustCall(method, path string, body, out interface{}) {
	tl.t.Helper()
	if status := tl.call(method, path, body, out); status != http.StatusOK {
		tl.t.Fatalf("%s %s: status %d", method, path, status)
	}
}

func (tl *testLab) stats() statsResponse {
	tl.t.Helper()
	var s statsResponse
	tl.mustCall("GET", "/lab/stats", nil, &s)
	return s
}

// vms is GET /lab/vms by name.
func (tl *testLab) vms() map[string]vmEntry {
	tl.t.Helper()
	var list []vmEntry
	tl.mustCall("GET", "/lab/vms", nil, &list)
	out := map[string]vmEntry{}
	for _, vm := range list {
		out[vm.Name] = vm
	}
	return out
}

func (tl *testLab) parent(c *vim25.Client, name string) *object.VirtualMachine {
	tl.t.Helper()
	p, ok := tl.built.inv.parents[name]
	if !ok {
		tl.t.Fatalf("no parent %q", name)
	}
	return object.NewVirtualMachine(c, p.ref)
}

// snapshot takes a snapshot of vm and returns it.
func (tl *testLab) snapshot(vm *object.VirtualMachine) types.ManagedObjectReference {
	tl.t.Helper()
	ctx := context.Background()
	task, err := vm.CreateSnapshot(ctx, "base", "", false, false)
	if err != nil {
		tl.t.Fatalf("snapshot: %v", err)
	}
	info, err := task.WaitForResult(ctx, nil)
	if err != nil {
		tl.t.Fatalf("snapshot: %v", err)
	}
	return info.Result.(types.ManagedObjectReference)
}

// cloneSpec asks for a clone into the Training cluster's pool (linked if snap is set and move
// is createNewChildDiskBacking).
func (tl *testLab) cloneSpec(snap *types.ManagedObjectReference, move string) types.VirtualMachineCloneSpec {
	pool := tl.built.inv.pools["Training"]
	return types.VirtualMachineCloneSpec{
		Location: types.VirtualMachineRelocateSpec{Pool: &pool, DiskMoveType: move},
		Snapshot: snap,
	}
}

// clone runs CloneVM_Task into the Training folder; it returns the new VM, or the task's error.
func (tl *testLab) clone(vm *object.VirtualMachine, name string, spec types.VirtualMachineCloneSpec) (*object.VirtualMachine, error) {
	tl.t.Helper()
	ctx := context.Background()
	folder := object.NewFolder(vm.Client(), tl.built.inv.vmFolders["Training"])
	task, err := vm.Clone(ctx, folder, name, spec)
	if err != nil {
		return nil, err
	}
	info, err := task.WaitForResult(ctx, nil)
	if err != nil {
		return nil, err
	}
	return object.NewVirtualMachine(vm.Client(), info.Result.(types.ManagedObjectReference)), nil
}

func (tl *testLab) mustClone(vm *object.VirtualMachine, name string, spec types.VirtualMachineCloneSpec) *object.VirtualMachine {
	tl.t.Helper()
	clone, err := tl.clone(vm, name, spec)
	if err != nil {
		tl.t.Fatalf("clone %s: %v", name, err)
	}
	return clone
}

// props reads properties of a VM through the property collector.
func (tl *testLab) props(vm *object.VirtualMachine, names ...string) mo.VirtualMachine {
	tl.t.Helper()
	var out mo.VirtualMachine
	if err := property.DefaultCollector(vm.Client()).RetrieveOne(context.Background(), vm.Reference(), names, &out); err != nil {
		tl.t.Fatalf("read %v: %v", names, err)
	}
	return out
}

func (tl *testLab) datastoreFree(c *vim25.Client) int64 {
	tl.t.Helper()
	var ds mo.Datastore
	ref := tl.built.inv.datastores["TrainingDS"]
	if err := property.DefaultCollector(c).RetrieveOne(context.Background(), ref, []string{"summary"}, &ds); err != nil {
		tl.t.Fatalf("read datastore: %v", err)
	}
	return ds.Summary.FreeSpace
}

func diskBackings(vm mo.VirtualMachine) []*types.VirtualDiskFlatVer2BackingInfo {
	var out []*types.VirtualDiskFlatVer2BackingInfo
	for _, d := range vmDisks(vm.Config.Hardware.Device) {
		if b, ok := d.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok {
			out = append(out, b)
		}
	}
	return out
}

// waitFor polls cond every 10 ms until it holds, or fails the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// faultName is the type name of the vSphere fault in a SOAP fault or a failed task's error, e.g.
// "NotAuthenticated" ("" if err carries none).
func faultName(err error) string {
	var fault interface{}
	switch {
	case err == nil:
		return ""
	case soap.IsSoapFault(err):
		fault = soap.ToSoapFault(err).VimFault()
	case soap.IsVimFault(err):
		fault = soap.ToVimFault(err)
	default:
		if te, ok := err.(interface{ Fault() types.BaseMethodFault }); ok {
			fault = te.Fault()
		}
	}
	if fault == nil {
		return ""
	}
	t := reflect.TypeOf(fault)
	for t.Kind() == reflect.Ptr {
		t = t.Elem()
	}
	return t.Name()
}
