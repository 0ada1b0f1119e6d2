package main

// Building a lab in this process: the simulator model, the spec's inventory in it, and the Lab
// handler in front. main.go serves it on its listener; the tests serve it with net/http/httptest.

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
)

// builtLab is a lab ready to serve.
type builtLab struct {
	model *simulator.Model
	inv   *inventory
	lab   *Lab
}

// buildLab creates the simulator model and the spec's inventory and puts the lab in front.
// hostport is where clients reach the lab (the simulator's session manager names it). The
// simulator keeps its objects in a global registry: one lab per process at a time.
func buildLab(spec *Spec, hostport string) (*builtLab, error) {
	// A fresh vCenter has no customization specs: drop the simulator's vcsim-* samples (the
	// spec's customization_specs are created by buildInventory).
	simulator.DefaultCustomizationSpec = nil
	model := simulator.VPX()
	model.Datacenter = 1
	model.Cluster = 0
	model.ClusterHost = 0
	model.Host = 0
	model.Datastore = 0
	model.Machine = 0
	model.Portgroup = 0
	model.Autostart = false
	if err := model.Create(); err != nil {
		return nil, fmt.Errorf("simulator model: %v", err)
	}
	ctx := context.Background()
	client, err := vim25.NewClient(ctx, model.Service)
	if err != nil {
		return nil, fmt.Errorf("in-process client: %v", err)
	}
	inv, err := buildInventory(ctx, client, spec)
	if err != nil {
		return nil, fmt.Errorf("building the inventory: %v", err)
	}

	// Credentials: a Userinfo distinct from simulator.DefaultLogin makes the simulator check them
	// (with DefaultLogin itself it accepts any non-empty user and password).
	simulator.DefaultLogin = url.UserPassword(spec.User, spec.Password)
	model.Service.Listen = &url.URL{Host: "127.0.0.1:0", User: url.UserPassword(spec.User, spec.Password)}
	model.Service.ServeMux = http.NewServeMux()
	inner := model.Service.NewServer() // registers the SDK handlers on our ServeMux
	inner.Close()                      // ...and its own listener is not used
	simulator.Map.SessionManager().ServiceHostName = hostport

	return &builtLab{model: model, inv: inv, lab: newLab(spec, inv, model.Service.ServeMux)}, nil
}

// close removes what the lab left on disk (the datastores' folders).
func (b *builtLab) close() {
	b.lab.reaper.close()
	b.model.Remove()
	_ = os.RemoveAll(b.inv.tmpDir)
}
