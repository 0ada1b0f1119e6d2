package main

// Privileges: the lab answers AuthorizationManager's privilege queries for its one user from the
// spec's "privileges" list (absent: every privilege of the simulator's Admin role), on every
// entity, so a test can take one privilege away and see the bot's pre-flight check report it.
// The simulator alone grants everything to everyone. Other user names hold no privilege.

import (
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator/esx"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"
)

// privilegeMethods are the AuthorizationManager methods the lab answers itself.
var privilegeMethods = []string{"FetchUserPrivilegeOnEntities", "HasUserPrivilegeOnEntities",
	"HasPrivilegeOnEntities", "HasPrivilegeOnEntity"}

// grants holds the privileges of the lab's user (nil list: all of the Admin role).
type grants struct {
	mu   sync.Mutex
	user string
	list []string
}

func allPrivileges() []string {
	all := append([]string(nil), object.AuthorizationRoleList(esx.RoleList).ByName("Admin").Privilege...)
	sort.Strings(all)
	return all
}

func newGrants(user string, list []string) *grants {
	g := &grants{user: user}
	g.set(list)
	return g
}

// set replaces the user's privileges; nil means all of them.
func (g *grants) set(list []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if list == nil {
		g.list = nil
		return
	}
	g.list = append([]string{}, list...)
	sort.Strings(g.list)
}

// of returns the privileges `user` holds ("" is the lab's user: session-based queries).
func (g *grants) of(user string) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if user != "" && !strings.EqualFold(user, g.user) {
		return []string{}
	}
	if g.list == nil {
		return allPrivileges()
	}
	return append([]string{}, g.list...)
}

// current is the list as configured (nil: all), for GET /lab/config.
func (g *grants) current() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.list == nil {
		return nil
	}
	return append([]string{}, g.list...)
}

func availability(held []string, asked []string) []types.PrivilegeAvailability {
	have := map[string]bool{}
	for _, p := range held {
		have[p] = true
	}
	out := make([]types.PrivilegeAvailability, 0, len(asked))
	for _, p := range asked {
		out = append(out, types.PrivilegeAvailability{PrivId: p, IsGranted: have[p]})
	}
	return out
}

// hasPrivilegeOnEntityResponse is types.HasPrivilegeOnEntityResponse without omitempty: govmomi's
// encoder applies it to each element of a []bool, so every false answer would be dropped and the
// list would no longer match the privileges asked for.
type hasPrivilegeOnEntityResponse struct {
	XMLName   xml.Name `xml:"urn:vim25 HasPrivilegeOnEntityResponse"`
	Returnval []bool   `xml:"returnval"`
}

// privilegeHook answers a privilege query from the spec's privileges (the simulator answers a
// body the lab does not understand).
func (l *Lab) privilegeHook(c *soapCall, w http.ResponseWriter) (bool, func(*httptest.ResponseRecorder)) {
	switch req := decodeBody(c.body).(type) {
	case *types.FetchUserPrivilegeOnEntities:
		held := l.grants.of(req.UserName)
		var out []types.UserPrivilegeResult
		for _, e := range req.Entities {
			out = append(out, types.UserPrivilegeResult{Entity: e, Privileges: held})
		}
		writeEnvelope(w, http.StatusOK, &response{Body: &methods.FetchUserPrivilegeOnEntitiesBody{
			Res: &types.FetchUserPrivilegeOnEntitiesResponse{Returnval: out}}})
	case *types.HasUserPrivilegeOnEntities:
		held := l.grants.of(req.UserName)
		var out []types.EntityPrivilege
		for _, e := range req.Entities {
			out = append(out, types.EntityPrivilege{Entity: e, PrivAvailability: availability(held, req.PrivId)})
		}
		writeEnvelope(w, http.StatusOK, &response{Body: &methods.HasUserPrivilegeOnEntitiesBody{
			Res: &types.HasUserPrivilegeOnEntitiesResponse{Returnval: out}}})
	case *types.HasPrivilegeOnEntities:
		held := l.grants.of("")
		var out []types.EntityPrivilege
		for _, e := range req.Entity {
			out = append(out, types.EntityPrivilege{Entity: e, PrivAvailability: availability(held, req.PrivId)})
		}
		writeEnvelope(w, http.StatusOK, &response{Body: &methods.HasPrivilegeOnEntitiesBody{
			Res: &types.HasPrivilegeOnEntitiesResponse{Returnval: out}}})
	case *types.HasPrivilegeOnEntity:
		var out []bool
		for _, a := range availability(l.grants.of(""), req.PrivId) {
			out = append(out, a.IsGranted)
		}
		writeEnvelope(w, http.StatusOK, struct{ Res *hasPrivilegeOnEntityResponse }{
			&hasPrivilegeOnEntityResponse{Returnval: out}})
	default:
		return false, nil
	}
	return true, nil
}

// privilegeProblems checks privilege ids look like vSphere's ("Group.Sub.Name").
func privilegeProblems(list []string, p *problems) {
	for i, id := range list {
		if !strings.Contains(id, ".") || strings.ContainsAny(id, " \t") {
			p.add("privileges[%d]: %q is not a privilege id (e.g. \"VirtualMachine.Provisioning.Clone\")", i, id)
		}
	}
}
