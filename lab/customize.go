package main

// Guest customization as vCenter does it, on top of the simulator: customization specs from the lab
// spec, CloneVM_Task's spec.customization applied to the clone (the bare simulator ignores it),
// spec validation at clone time, and CustomizationStartedEvent / CustomizationSucceeded /
// CustomizationFailed subtypes posted when a VM with pending customization powers on.

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/event"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/types"
)

// CustomizationSpecSpec is one customization spec created in the CustomizationSpecManager.
type CustomizationSpecSpec struct {
	Name        string `json:"name"`
	Kind        string `json:"kind"` // "sysprep" or "linux"
	Description string `json:"description"`
}

func (s *Spec) validateCustomization(p *problems) {
	seen := map[string]bool{}
	for i, c := range s.CustomizationSpecs {
		switch {
		case strings.TrimSpace(c.Name) == "":
			p.add("customization_specs[%d]: name must be non-empty", i)
		case seen[c.Name]:
			p.add("customization_specs[%d]: duplicate name %q", i, c.Name)
		}
		seen[c.Name] = true
		if c.Kind != "sysprep" && c.Kind != "linux" {
			p.add("customization_specs[%d] %q: kind must be \"sysprep\" or \"linux\", got %q", i, c.Name, c.Kind)
		}
	}
	if s.CustomizationLatencyMS < 0 {
		p.add("customization_latency_ms: must be 0 or more")
	}
}

func (f *FaultSpec) validateCustomization(p *problems) {
	for _, n := range f.CustomizationFailNth {
		if n < 1 {
			p.add("faults.customization_fail_nth: ordinals start at 1, got %d", n)
		}
	}
	for i, n := range f.CustomizationFailNames {
		if strings.TrimSpace(n) == "" {
			p.add("faults.customization_fail_names[%d]: must be a non-empty VM name", i)
		}
	}
}

// customizationSpecItem builds what vCenter's CustomizationSpecManager would hold for a spec
// saved in the UI: computer name = the VM's name, DHCP on every NIC, one NIC mapping per NIC.
func customizationSpecItem(cs CustomizationSpecSpec, nics int) types.CustomizationSpecItem {
	var nicMap []types.CustomizationAdapterMapping
	for i := 0; i < nics; i++ {
		nicMap = append(nicMap, types.CustomizationAdapterMapping{
			Adapter: types.CustomizationIPSettings{Ip: &types.CustomizationDhcpIpGenerator{}},
		})
	}
	item := types.CustomizationSpecItem{
		Info: types.CustomizationSpecInfo{
			Name:           cs.Name,
			Description:    cs.Description,
			ChangeVersion:  "1",
			LastUpdateTime: types.NewTime(time.Now()),
		},
		Spec: types.CustomizationSpec{
			GlobalIPSettings: types.CustomizationGlobalIPSettings{DnsServerList: []string{"10.0.0.53"}},
			NicSettingMap:    nicMap,
		},
	}
	if cs.Kind == "sysprep" {
		item.Info.Type = "Windows"
		item.Spec.Options = &types.CustomizationWinOptions{ChangeSID: true}
		item.Spec.Identity = &types.CustomizationSysprep{
			GuiUnattended: types.CustomizationGuiUnattended{TimeZone: 85, AutoLogonCount: 1},
			UserData: types.CustomizationUserData{
				FullName:     "Training",
				OrgName:      "Training",
				ComputerName: &types.CustomizationVirtualMachineName{},
			},
			Identification: types.CustomizationIdentification{JoinWorkgroup: "WORKGROUP"},
		}
	} else {
		item.Info.Type = "Linux"
		item.Spec.Options = &types.CustomizationLinuxOptions{}
		item.Spec.Identity = &types.CustomizationLinuxPrep{
			HostName:   &types.CustomizationVirtualMachineName{},
			Domain:     "training.lab",
			TimeZone:   "Etc/UTC",
			HwClockUTC: types.NewBool(true),
		}
	}
	return item
}

// createCustomizationSpecs fills the CustomizationSpecManager (the simulator's vcsim-* defaults
// are dropped in main.go before the model is created: a fresh vCenter has none).
func createCustomizationSpecs(ctx context.Context, client *vim25.Client, specs []CustomizationSpecSpec, nics int) error {
	ref := client.ServiceContent.CustomizationSpecManager
	if ref == nil {
		return fmt.Errorf("no CustomizationSpecManager")
	}
	for _, cs := range specs {
		_, err := methods.CreateCustomizationSpec(ctx, client, &types.CreateCustomizationSpec{
			This: *ref, Item: customizationSpecItem(cs, nics),
		})
		if err != nil {
			return fmt.Errorf("create customization spec %s: %v", cs.Name, err)
		}
	}
	return nil
}

func countNICs(devices []types.BaseVirtualDevice) int {
	n := 0
	for _, d := range devices {
		if _, ok := d.(types.BaseVirtualEthernetCard); ok {
			n++
		}
	}
	return n
}

var hostLabel = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$`)

// computerName returns the kind ("sysprep", "linux" or ""), the name the guest ends up with and,
// for a spec vCenter refuses, the fault it gives (InvalidArgument naming the property, as in
// "A specified parameter was not correct: spec.identity.userData.computerName").
func computerName(spec *types.CustomizationSpec, vmName string, seq int) (string, string, types.BaseMethodFault) {
	var base types.BaseCustomizationName
	kind, prop, limit := "", "", 63
	switch id := spec.Identity.(type) {
	case *types.CustomizationSysprep:
		kind, prop, limit, base = "sysprep", "spec.identity.userData.computerName", 15, id.UserData.ComputerName
	case *types.CustomizationLinuxPrep:
		kind, prop, base = "linux", "spec.identity.hostName", id.HostName
	case *types.CustomizationSysprepText:
		return "sysprep", "", nil // raw sysprep answer file: the lab cannot tell the name
	default:
		return "", "", &types.InvalidArgument{InvalidProperty: "spec.identity"}
	}
	name := ""
	switch n := base.(type) {
	case *types.CustomizationFixedName:
		if len(n.Name) > limit || !hostLabel.MatchString(n.Name) {
			return kind, "", &types.InvalidArgument{InvalidProperty: prop}
		}
		return kind, n.Name, nil
	case *types.CustomizationVirtualMachineName:
		// vCenter derives it from the VM name, truncated to the NetBIOS limit for Windows.
		name = vmName
	case *types.CustomizationPrefixName:
		name = fmt.Sprintf("%s-%d", n.Base, seq)
	case *types.CustomizationCustomName:
		name = n.Argument
	case *types.CustomizationUnknownName:
		return kind, "", nil
	default:
		return kind, "", &types.InvalidArgument{InvalidProperty: prop}
	}
	if len(name) > limit {
		name = strings.TrimRight(name[:limit], "-")
	}
	return kind, name, nil
}

// custRecord is a VM's customization as the lab tracks it.
type custRecord struct {
	kind  string
	name  string // computer name the guest gets
	state string // pending, succeeded, failed
}

// customizer holds the lab's customization state (its own lock; never held while calling the
// simulator).
type customizer struct {
	mu      sync.Mutex
	latency int
	ordinal int // customizations started since start or the last POST /lab/reset
	seq     int
	recs    map[types.ManagedObjectReference]*custRecord
}

func newCustomizer(spec *Spec) *customizer {
	return &customizer{latency: spec.CustomizationLatencyMS, recs: map[types.ManagedObjectReference]*custRecord{}}
}

func (c *customizer) state(ref types.ManagedObjectReference) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.recs[ref]; r != nil {
		return r.state
	}
	return ""
}

func (c *customizer) reset() {
	c.mu.Lock()
	c.ordinal = 0
	c.mu.Unlock()
}

func (c *customizer) getLatency() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.latency
}

func (c *customizer) setLatency(ms int) {
	c.mu.Lock()
	c.latency = ms
	c.mu.Unlock()
}

func (c *customizer) nextSeq() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	return c.seq
}

// checkCloneCustomization validates a CloneVM_Task's spec.customization before the clone is made,
// as vCenter does: a bad computer name or a NIC count mismatch fails the task, no VM is created.
func (l *Lab) checkCloneCustomization(req *types.CloneVM_Task, src *simulator.VirtualMachine) types.BaseMethodFault {
	spec := req.Spec.Customization
	if spec == nil {
		return nil
	}
	if _, _, fault := computerName(spec, req.Name, 0); fault != nil {
		return fault
	}
	var nics int
	simulator.Map.WithLock(src, func() { nics = countNICs(src.Config.Hardware.Device) })
	if len(spec.NicSettingMap) != nics {
		return &types.NicSettingMismatch{NumberOfNicsInSpec: int32(len(spec.NicSettingMap)), NumberOfNicsInVM: int32(nics)}
	}
	return nil
}

// applyCloneCustomization makes the clone's customization pending, as vCenter does after a clone
// with spec.customization: the simulator's own CustomizeVM_Task sets
// config.tools.pendingCustomization, the lab remembers the computer name.
func (l *Lab) applyCloneCustomization(req *types.CloneVM_Task, clone *simulator.VirtualMachine) {
	spec := req.Spec.Customization
	if spec == nil {
		return
	}
	ctx := context.Background()
	task, err := object.NewVirtualMachine(l.inv.client, clone.Self).Customize(ctx, *spec)
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		return // checked beforehand; nothing pending then
	}
	l.recordPending(clone.Self, clone.Name, spec)
}

func (l *Lab) recordPending(ref types.ManagedObjectReference, vmName string, spec *types.CustomizationSpec) {
	kind, name, _ := computerName(spec, vmName, l.cust.nextSeq())
	l.cust.mu.Lock()
	l.cust.recs[ref] = &custRecord{kind: kind, name: name, state: "pending"}
	l.cust.mu.Unlock()
}

// customizeHook answers a CustomizeVM_Task whose spec vCenter would refuse with a failed task;
// otherwise, once the simulator has made the customization pending, the lab records it.
func (l *Lab) customizeHook(c *soapCall, w http.ResponseWriter) (bool, func(*httptest.ResponseRecorder)) {
	req, ok := decodeBody(c.body).(*types.CustomizeVM_Task)
	if !ok {
		return false, nil
	}
	vm, ok := simulator.Map.Get(req.This).(*simulator.VirtualMachine)
	if !ok {
		return false, nil
	}
	var vmName string
	simulator.Map.WithLock(vm, func() { vmName = vm.Name })
	if _, _, fault := computerName(&req.Spec, vmName, 0); fault != nil {
		task := simulator.CreateTask(vm, "customizeVm", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
			return nil, fault
		})
		writeEnvelope(w, http.StatusOK, &response{Body: &methods.CustomizeVM_TaskBody{
			Res: &types.CustomizeVM_TaskResponse{Returnval: task.Run()},
		}})
		return true, nil
	}
	return false, func(rec *httptest.ResponseRecorder) {
		if rec.Code == http.StatusOK {
			l.recordCustomized(vm, &req.Spec)
		}
	}
}

// recordCustomized records the customization CustomizeVM_Task made pending (unless one is
// pending already).
func (l *Lab) recordCustomized(vm *simulator.VirtualMachine, spec *types.CustomizationSpec) {
	if _, ok := simulator.Map.Get(vm.Self).(*simulator.VirtualMachine); !ok {
		return
	}
	var pending bool
	var vmName string
	simulator.Map.WithLock(vm, func() {
		pending = vm.Config.Tools != nil && vm.Config.Tools.PendingCustomization != ""
		vmName = vm.Name
	})
	l.cust.mu.Lock()
	r := l.cust.recs[vm.Self]
	fresh := r == nil || r.state != "pending"
	l.cust.mu.Unlock()
	if pending && fresh {
		l.recordPending(vm.Self, vmName, spec)
	}
}

// powerOnHook starts the pending customization of a VM the call powers on.
func (l *Lab) powerOnHook(c *soapCall, w http.ResponseWriter) (bool, func(*httptest.ResponseRecorder)) {
	ref, ok := thisRef(c.body)
	if !ok {
		return false, nil
	}
	vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		return false, nil
	}
	var pending bool
	var oldHost string
	simulator.Map.WithLock(vm, func() {
		pending = vm.Config.Tools != nil && vm.Config.Tools.PendingCustomization != "" &&
			vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn
		oldHost = vm.Guest.HostName
	})
	if !pending {
		return false, nil
	}
	return false, func(rec *httptest.ResponseRecorder) {
		var on bool
		simulator.Map.WithLock(vm, func() {
			on = vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn
			if on {
				// The simulator's customize() names the guest "<vm>-<n>" at once; vCenter's
				// guest keeps its old name until customization has run.
				simulator.Map.Update(vm, []types.PropertyChange{{Name: "guest.hostName", Val: oldHost}})
			}
		})
		if on {
			l.startCustomization(vm)
		}
	}
}

var thisPattern = regexp.MustCompile(`<_this[^>]*>([^<]+)</_this>`)

func thisRef(body []byte) (types.ManagedObjectReference, bool) {
	m := thisPattern.FindSubmatch(body)
	if m == nil {
		return types.ManagedObjectReference{}, false
	}
	return types.ManagedObjectReference{Type: "VirtualMachine", Value: string(bytes.TrimSpace(m[1]))}, true
}

// startCustomization posts CustomizationStartedEvent now and the outcome after
// customization_latency_ms (at once, before PowerOnVM_Task returns, when it is 0).
func (l *Lab) startCustomization(vm *simulator.VirtualMachine) {
	l.cust.mu.Lock()
	r := l.cust.recs[vm.Self]
	if r == nil {
		r = &custRecord{state: "pending"}
		l.cust.recs[vm.Self] = r
	}
	l.cust.ordinal++
	ordinal := l.cust.ordinal
	latency := l.cust.latency
	rec := *r
	l.cust.mu.Unlock()

	var vmName string
	simulator.Map.WithLock(vm, func() { vmName = vm.Name })
	fail := l.customizationFails(vmName, ordinal)
	l.postCustomizationEvent(vm, &types.CustomizationStartedEvent{CustomizationEvent: l.custEvent(vm,
		fmt.Sprintf("Started customization of VM %s. Customization log located at %s in the guest OS.", vmName, custLog(rec.kind)), rec.kind)})
	if latency <= 0 {
		l.finishCustomization(vm, vmName, rec, fail)
		return
	}
	go func() {
		time.Sleep(time.Duration(latency) * time.Millisecond)
		l.finishCustomization(vm, vmName, rec, fail)
	}()
}

// customizationFails tells whether the faults make this customization run fail.
func (l *Lab) customizationFails(vmName string, ordinal int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	fail := containsInt(l.faults.CustomizationFailNth, ordinal)
	for _, n := range l.faults.CustomizationFailNames {
		fail = fail || n == vmName
	}
	return fail
}

// finishCustomization posts the outcome event; on success the guest takes its new name.
func (l *Lab) finishCustomization(vm *simulator.VirtualMachine, vmName string, rec custRecord, fail bool) {
	if _, ok := simulator.Map.Get(vm.Self).(*simulator.VirtualMachine); !ok {
		return // destroyed meanwhile
	}
	if fail {
		l.postCustomizationEvent(vm, failureEvent(l.custEvent(vm,
			fmt.Sprintf("An error occurred while customizing VM %s. For details reference the log file %s in the guest OS.", vmName, custLog(rec.kind)), rec.kind), rec.kind))
	} else {
		simulator.Map.WithLock(vm, func() {
			changes := []types.PropertyChange{}
			if rec.name != "" {
				for i := range vm.Guest.Net {
					if vm.Guest.Net[i].DnsConfig != nil {
						vm.Guest.Net[i].DnsConfig.HostName = rec.name
					}
				}
				changes = append(changes,
					types.PropertyChange{Name: "guest.hostName", Val: rec.name},
					types.PropertyChange{Name: "guest.net", Val: vm.Guest.Net})
			}
			simulator.Map.Update(vm, changes)
		})
		l.postCustomizationEvent(vm, &types.CustomizationSucceeded{CustomizationEvent: l.custEvent(vm,
			fmt.Sprintf("Customization of VM %s succeeded. Customization log located at %s in the guest OS.", vmName, custLog(rec.kind)), rec.kind)})
	}
	l.cust.mu.Lock()
	if cur := l.cust.recs[vm.Self]; cur != nil {
		cur.state = map[bool]string{true: "failed", false: "succeeded"}[fail]
	}
	l.cust.mu.Unlock()
}

func custLog(kind string) string {
	if kind == "linux" {
		return "/var/log/vmware-imc/toolsDeployPkg.log"
	}
	return `C:\Windows\TEMP\vmware-imc\guestcust.log`
}

func failureEvent(base types.CustomizationEvent, kind string) types.BaseEvent {
	failed := types.CustomizationFailed{CustomizationEvent: base, Reason: "lab: injected customization failure"}
	if kind == "linux" {
		return &types.CustomizationLinuxIdentityFailed{CustomizationFailed: failed}
	}
	return &types.CustomizationSysprepFailed{CustomizationFailed: failed, SysprepVersion: "6.0", SystemVersion: "10.0"}
}

// custEvent fills the entity arguments of a customization event (vm, host, cluster, datacenter).
func (l *Lab) custEvent(vm *simulator.VirtualMachine, msg, kind string) types.CustomizationEvent {
	ev := types.VmEvent{}
	simulator.Map.WithLock(vm, func() {
		ev.Vm = &types.VmEventArgument{EntityEventArgument: types.EntityEventArgument{Name: vm.Name}, Vm: vm.Self}
		if vm.Runtime.Host != nil {
			ev.Host = &types.HostEventArgument{EntityEventArgument: types.EntityEventArgument{Name: entityName(vm.Runtime.Host)}, Host: *vm.Runtime.Host}
		}
		if vm.ResourcePool != nil {
			if rp, ok := simulator.Map.Get(*vm.ResourcePool).(*simulator.ResourcePool); ok {
				owner := rp.Owner
				ev.ComputeResource = &types.ComputeResourceEventArgument{EntityEventArgument: types.EntityEventArgument{Name: entityName(&owner)}, ComputeResource: owner}
			}
		}
	})
	dc := l.inv.dc.Reference()
	ev.Datacenter = &types.DatacenterEventArgument{EntityEventArgument: types.EntityEventArgument{Name: entityName(&dc)}, Datacenter: dc}
	ev.FullFormattedMessage = msg
	return types.CustomizationEvent{VmEvent: ev, LogLocation: custLog(kind)}
}

func (l *Lab) postCustomizationEvent(vm *simulator.VirtualMachine, ev types.BaseEvent) {
	_ = event.NewManager(l.inv.client).PostEvent(context.Background(), ev)
}

// forgetCustomizationHook drops destroyed VMs from the customization state once Destroy_Task ran.
func (l *Lab) forgetCustomizationHook(c *soapCall, w http.ResponseWriter) (bool, func(*httptest.ResponseRecorder)) {
	return false, func(*httptest.ResponseRecorder) {
		l.cust.mu.Lock()
		defer l.cust.mu.Unlock()
		for ref := range l.cust.recs {
			if simulator.Map.Get(ref) == nil {
				delete(l.cust.recs, ref)
			}
		}
	}
}
