package main

// Privileges: the lab answers AuthorizationManager's queries from the spec's privileges, for its
// user only, and POST /lab/config changes them at run time.

import (
	"context"
	"net/http"
	"testing"

	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/types"
)

const cloneFromExisting = "VirtualMachine.Inventory.CreateFromExisting"

func TestPrivilegesComeFromTheSpec(t *testing.T) {
	var held []string
	for _, p := range allPrivileges() {
		if p != cloneFromExisting {
			held = append(held, p)
		}
	}
	tl := startLab(t, func(s *Spec) { s.Privileges = held })
	c := tl.connect()
	entity := tl.built.inv.parents["Capture"].ref
	asked := []string{"System.Read", cloneFromExisting}

	if got := userPrivileges(t, c, entity, "clones"); len(got) != len(held) || contains(got, cloneFromExisting) {
		t.Fatalf("FetchUserPrivilegeOnEntities: %d privileges (with %s: %v), want the spec's %d", len(got), cloneFromExisting, contains(got, cloneFromExisting), len(held))
	}
	if got := userPrivileges(t, c, entity, "someone-else"); len(got) != 0 {
		t.Fatalf("another user holds %v, want nothing", got)
	}
	if got := sessionGrants(t, c, entity, asked); !got["System.Read"] || got[cloneFromExisting] {
		t.Fatalf("HasPrivilegeOnEntities: %v", got)
	}
	one, err := methods.HasPrivilegeOnEntity(context.Background(), c, &types.HasPrivilegeOnEntity{
		This: *c.ServiceContent.AuthorizationManager, Entity: entity, SessionId: sessionKey(t, c), PrivId: asked})
	if err != nil || len(one.Returnval) != 2 || !one.Returnval[0] || one.Returnval[1] {
		t.Fatalf("HasPrivilegeOnEntity: %v %v", one, err)
	}

	// At run time: null gives every privilege back; a malformed id is refused and changes nothing.
	tl.mustCall("POST", "/lab/config", map[string]interface{}{"privileges": nil}, nil)
	if got := sessionGrants(t, c, entity, asked); !got[cloneFromExisting] {
		t.Fatalf("after privileges null: %v", got)
	}
	tl.mustCall("POST", "/lab/config", map[string]interface{}{"privileges": []string{"System.Read"}}, nil)
	if status := tl.call("POST", "/lab/config", map[string]interface{}{"privileges": []string{"Read"}}, nil); status != http.StatusBadRequest {
		t.Fatalf("privilege id without a dot: status %d, want 400", status)
	}
	var cfg configView
	tl.mustCall("GET", "/lab/config", nil, &cfg)
	if len(cfg.Privileges) != 1 || cfg.Privileges[0] != "System.Read" {
		t.Fatalf("config privileges: %v", cfg.Privileges)
	}
}

func userPrivileges(t *testing.T, c *vim25.Client, entity types.ManagedObjectReference, user string) []string {
	t.Helper()
	res, err := methods.FetchUserPrivilegeOnEntities(context.Background(), c, &types.FetchUserPrivilegeOnEntities{
		This: *c.ServiceContent.AuthorizationManager, Entities: []types.ManagedObjectReference{entity}, UserName: user})
	if err != nil || len(res.Returnval) != 1 {
		t.Fatalf("FetchUserPrivilegeOnEntities: %v %v", res, err)
	}
	return res.Returnval[0].Privileges
}

func sessionGrants(t *testing.T, c *vim25.Client, entity types.ManagedObjectReference, asked []string) map[string]bool {
	t.Helper()
	res, err := methods.HasPrivilegeOnEntities(context.Background(), c, &types.HasPrivilegeOnEntities{
		This: *c.ServiceContent.AuthorizationManager, Entity: []types.ManagedObjectReference{entity},
		SessionId: sessionKey(t, c), PrivId: asked})
	if err != nil || len(res.Returnval) != 1 {
		t.Fatalf("HasPrivilegeOnEntities: %v %v", res, err)
	}
	out := map[string]bool{}
	for _, a := range res.Returnval[0].PrivAvailability {
		out[a.PrivId] = a.IsGranted
	}
	return out
}

func sessionKey(t *testing.T, c *vim25.Client) string {
	t.Helper()
	s, err := session.NewManager(c).UserSession(context.Background())
	if err != nil || s == nil {
		t.Fatalf("current session: %v", err)
	}
	return s.Key
}
