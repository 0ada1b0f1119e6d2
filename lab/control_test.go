package main

// The /lab control API: description, config (partial updates, refusals that change nothing),
// reset, extra VMs, unknown endpoints, and requests in flight.

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/types"
)

func TestDescriptionListsEveryEndpoint(t *testing.T) {
	tl := startLab(t, nil)
	var info infoResponse
	tl.mustCall("GET", "/lab", nil, &info)
	if info.Datacenter != "DC0" || info.User != "clones" || len(info.Endpoints) != len(tl.built.lab.control)-2 {
		t.Fatalf("GET /lab: %+v", info)
	}
	var e errorResponse
	if status := tl.call("GET", "/lab/nothing", nil, &e); status != http.StatusNotFound || !strings.Contains(e.Error, "GET /lab/nothing") {
		t.Fatalf("unknown endpoint: %d %+v", status, e)
	}
	if status := tl.call("DELETE", "/lab/vms", nil, nil); status != http.StatusNotFound {
		t.Fatalf("unknown method: %d", status)
	}
}

func TestConfigIsUpdatedInPartsAndRefusalsChangeNothing(t *testing.T) {
	tl := startLab(t, nil)
	var cfg configView
	tl.mustCall("GET", "/lab/config", nil, &cfg)
	if cfg.CloneLatencyMS != 0 || cfg.Faults.Fault != "FileLocked" || cfg.Faults.FailNth == nil || cfg.Privileges != nil {
		t.Fatalf("default config: %+v", cfg)
	}
	tl.mustCall("POST", "/lab/config", map[string]interface{}{
		"clone_latency_ms": 40, "faults": map[string]interface{}{"fail_nth": []int{2}, "full_copy_nth": []int{3}}}, nil)
	tl.mustCall("POST", "/lab/config", map[string]interface{}{
		"customization_latency_ms": 5, "faults": map[string]interface{}{"fault": "Timedout"}}, &cfg)
	if cfg.CloneLatencyMS != 40 || cfg.CustomizationLatencyMS != 5 || cfg.Faults.Fault != "Timedout" ||
		len(cfg.Faults.FailNth) != 1 || cfg.Faults.FailNth[0] != 2 || cfg.Faults.FullCopyNth[0] != 3 {
		t.Fatalf("fields left out must keep their values: %+v", cfg)
	}
	refused := []struct {
		body    map[string]interface{}
		mention string
	}{
		{map[string]interface{}{"colour": "red"}, `unknown field "colour"`},
		{map[string]interface{}{"clone_latency_ms": "fast"}, "config.clone_latency_ms: must be a whole number"},
		{map[string]interface{}{"destroy_latency_ms": -1}, "0 or more"},
		{map[string]interface{}{"faults": map[string]interface{}{"fault": "Gremlins"}}, `unknown fault "Gremlins"`},
		{map[string]interface{}{"faults": map[string]interface{}{"fail_nth": []int{0}}}, "ordinals start at 1"},
		{map[string]interface{}{"faults": map[string]interface{}{"size": 1}}, `faults: unknown field "size"`},
		{map[string]interface{}{"clone_latency_ms": 1, "faults": map[string]interface{}{"fail_fraction": 2}}, "between 0 and 1"},
	}
	for _, r := range refused {
		var e errorResponse
		if status := tl.call("POST", "/lab/config", r.body, &e); status != http.StatusBadRequest || !strings.Contains(e.Error, r.mention) {
			t.Errorf("%v: %d %q, want 400 mentioning %q", r.body, status, e.Error, r.mention)
		}
	}
	var after configView
	tl.mustCall("GET", "/lab/config", nil, &after)
	if after.CloneLatencyMS != 40 || after.Faults.Fault != "Timedout" || after.Faults.FailFraction != 0 {
		t.Fatalf("a refused update changed the config: %+v", after)
	}
}

func TestExtraVMs(t *testing.T) {
	tl := startLab(t, nil)
	var vm vmEntry
	tl.mustCall("POST", "/lab/vms", map[string]interface{}{
		"name": "decoy", "folder": "Training", "parent_like": "Packaging", "custom": map[string]string{"ManagedBy": "clones"},
		"power_state": "poweredOn", "host": "esx-training-03", "linked": true}, &vm)
	if vm.Name != "decoy" || vm.Folder != "Training" || vm.Host != "esx-training-03" || vm.PowerState != "poweredOn" ||
		!vm.Linked || vm.Parent != "Packaging" || vm.Custom["ManagedBy"] != "clones" || vm.Committed != gbBytes(0.13) || vm.IsParent {
		t.Fatalf("POST /lab/vms: %+v", vm)
	}
	if got := tl.vms()["decoy"]; got.Moref != vm.Moref {
		t.Fatalf("GET /lab/vms: %+v", got)
	}
	refused := []struct {
		body   map[string]interface{}
		status int
	}{
		{map[string]interface{}{"name": "decoy", "folder": "Training"}, http.StatusConflict},
		{map[string]interface{}{"folder": "Training"}, http.StatusBadRequest},
		{map[string]interface{}{"name": "x", "folder": "Attic"}, http.StatusBadRequest},
		{map[string]interface{}{"name": "x", "parent_like": "Nope"}, http.StatusBadRequest},
		{map[string]interface{}{"name": "x", "host": "esx-nowhere"}, http.StatusBadRequest},
		{map[string]interface{}{"name": "x", "power_state": "suspended"}, http.StatusBadRequest},
		{map[string]interface{}{"name": "x", "colour": "red"}, http.StatusBadRequest},
	}
	for _, r := range refused {
		if status := tl.call("POST", "/lab/vms", r.body, nil); status != r.status {
			t.Errorf("%v: status %d, want %d", r.body, status, r.status)
		}
	}
	if _, made := tl.vms()["x"]; made {
		t.Fatal("a refused request made a VM")
	}
}

func TestRequestsInFlightCountsAnsweringCallsButNotBlockingWaits(t *testing.T) {
	tl := startLab(t, func(s *Spec) { s.CloneLatencyMS = 300 })
	c := tl.connect()
	parent := tl.parent(c, "Capture")
	if n := tl.stats().RequestsInFlight; n != 0 {
		t.Fatalf("an idle lab has %d requests in flight", n)
	}

	var wg sync.WaitGroup
	for _, name := range []string{"a", "b"} {
		wg.Add(1)
		go func(name string) {
			defer wg.Done()
			if _, err := tl.clone(parent, name, tl.cloneSpec(nil, "")); err != nil {
				t.Errorf("clone %s: %v", name, err)
			}
		}(name)
	}
	waitFor(t, 5*time.Second, "two clones in flight", func() bool { return tl.stats().RequestsInFlight == 2 })
	wg.Wait()
	s := tl.stats()
	if s.RequestsInFlight != 0 || s.CloneInFlightMax != 2 {
		t.Fatalf("after the clones: in flight %d, most clones at once %d", s.RequestsInFlight, s.CloneInFlightMax)
	}

	// A WaitForUpdatesEx blocked on changes is not work in flight.
	ctx := context.Background()
	pc, err := property.DefaultCollector(c).Create(ctx)
	if err != nil {
		t.Fatalf("property collector: %v", err)
	}
	filter := types.CreateFilter{This: pc.Reference(), Spec: types.PropertyFilterSpec{
		ObjectSet: []types.ObjectSpec{{Obj: parent.Reference()}},
		PropSet:   []types.PropertySpec{{Type: "VirtualMachine", PathSet: []string{"name"}}},
	}}
	if _, err := methods.CreateFilter(ctx, c, &filter); err != nil {
		t.Fatalf("filter: %v", err)
	}
	wait := func(version string) string {
		res, err := methods.WaitForUpdatesEx(ctx, c, &types.WaitForUpdatesEx{This: pc.Reference(), Version: version,
			Options: &types.WaitOptions{MaxWaitSeconds: types.NewInt32(2)}})
		if err != nil {
			t.Errorf("WaitForUpdatesEx: %v", err)
			return ""
		}
		if res.Returnval == nil {
			return version
		}
		return res.Returnval.Version
	}
	tl.mustCall("POST", "/lab/reset", nil, nil) // task waits were WaitForUpdatesEx calls too
	version := wait("")
	done := make(chan struct{})
	go func() { wait(version); close(done) }()
	waitFor(t, 5*time.Second, "a blocking WaitForUpdatesEx", func() bool { return tl.stats().Requests["WaitForUpdatesEx"] == 2 })
	if n := tl.stats().RequestsInFlight; n != 0 {
		t.Fatalf("a blocked WaitForUpdatesEx counts as %d in flight, want 0", n)
	}
	<-done
}
