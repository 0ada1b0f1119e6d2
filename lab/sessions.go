package main

// The session gate: every call but RetrieveServiceContent, the Login family and a Fetch of
// ServiceInstance.content needs a live session, as on vCenter. The lab keeps the sessions it saw
// created, so it can end them all (POST /lab/expire-sessions): a client's next call then gets
// NotAuthenticated, and a new Login works. With "expired_session_reads": "missing_set"
// (visibility.go) the reads VMware's simulator answers without a session (Fetch,
// RetrieveProperties, RetrievePropertiesEx) go to it, and it answers them as it does: HTTP 200,
// every property in missingSet with NotAuthenticated.

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"

	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// Methods a client may call without a session (everything else needs a live session cookie).
var noSessionMethods = map[string]bool{
	"RetrieveServiceContent": true, "Login": true, "LoginByToken": true,
	"LoginExtensionByCertificate": true, "LoginExtensionBySubjectName": true,
	"LoginBySSPI": true, "CloneSession": true,
}

// loginMethods are the calls whose success creates a session.
var loginMethods = []string{"Login", "LoginByToken", "CloneSession", "LoginExtensionByCertificate",
	"LoginExtensionBySubjectName"}

// Properties anyone may Fetch without a session (pyVmomi sends <prop versionId="...">NAME</prop>).
var anonProps = regexp.MustCompile(`<prop[^>]*>content</prop>`)

// Reads VMware's simulator answers without a session (per property, with NotAuthenticated).
var simulatorAnonReads = map[string]bool{"Fetch": true, "RetrieveProperties": true, "RetrievePropertiesEx": true}

// sessionGate holds the session cookies the lab considers live.
type sessionGate struct {
	mu   sync.Mutex
	live map[string]bool
	// expiredReads is how reads without a live session are answered: expiredReadsFault or
	// expiredReadsMissingSet (visibility.go).
	expiredReads string
	// anonReads counts the PropertyCollector reads (RetrieveProperties[Ex]) let through to the
	// simulator without a session (a Fetch, such as a client's "who is logged in?", is not).
	anonReads int
}

func newSessionGate() *sessionGate {
	return &sessionGate{live: map[string]bool{}, expiredReads: expiredReadsFault}
}

// setExpiredReads chooses how reads without a live session are answered.
func (g *sessionGate) setExpiredReads(mode string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.expiredReads = mode
}

func (g *sessionGate) expiredReadsMode() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.expiredReads
}

// anonReadCount is how many reads were answered without a session (GET /lab/stats).
func (g *sessionGate) anonReadCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.anonReads
}

func (g *sessionGate) resetCounts() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.anonReads = 0
}

// simulatorAnswers tells whether the simulator answers this call without a session itself
// (counted), as in the "missing_set" mode.
func (g *sessionGate) simulatorAnswers(method string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.expiredReads != expiredReadsMissingSet || !simulatorAnonReads[method] {
		return false
	}
	if method != "Fetch" {
		g.anonReads++
	}
	return true
}

func (g *sessionGate) isLive(cookie string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return cookie != "" && g.live[cookie]
}

// admit lets a call through, or answers NotAuthenticated and returns false.
func (g *sessionGate) admit(c *soapCall, w http.ResponseWriter) bool {
	if g.isLive(c.cookie) {
		return true
	}
	// Unknown or expired session: the simulator must not see the stale cookie (it would still
	// accept it, and refuse a new Login while it is present).
	c.r.Header.Del("Cookie")
	// As on vCenter, a client may read ServiceInstance.content before logging in. Anything
	// else, SessionManager.currentSession included, needs a session (as in the simulator).
	anonRead := c.name == "Fetch" && anonProps.Match(c.body)
	if noSessionMethods[c.name] || c.name == "" || anonRead {
		return true
	}
	if g.simulatorAnswers(c.name) {
		return true
	}
	writeFault(w, "The session is not authenticated.", &types.NotAuthenticated{
		NoPermission: types.NoPermission{
			Object:      types.ManagedObjectReference{Type: "ServiceInstance", Value: "ServiceInstance"},
			PrivilegeId: "System.View",
		},
	})
	return false
}

// loginHook records the session a successful login creates.
func (g *sessionGate) loginHook(c *soapCall, w http.ResponseWriter) (bool, func(*httptest.ResponseRecorder)) {
	return false, func(rec *httptest.ResponseRecorder) {
		if rec.Code != http.StatusOK {
			return
		}
		for _, cookie := range rec.Result().Cookies() {
			if cookie.Name == soap.SessionCookieName {
				g.mu.Lock()
				g.live[cookie.Value] = true
				g.mu.Unlock()
			}
		}
	}
}

// logoutHook forgets the session of the call.
func (g *sessionGate) logoutHook(c *soapCall, w http.ResponseWriter) (bool, func(*httptest.ResponseRecorder)) {
	return false, func(*httptest.ResponseRecorder) {
		g.mu.Lock()
		delete(g.live, c.cookie)
		g.mu.Unlock()
	}
}

// expireAll ends every session and says how many there were.
func (g *sessionGate) expireAll() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := len(g.live)
	g.live = map[string]bool{}
	return n
}

func (g *sessionGate) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.live)
}
