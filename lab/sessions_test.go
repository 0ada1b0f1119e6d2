package main

// Sessions: the gate in front of the simulator, expiry and a new login, credentials.

import (
	"context"
	"net/url"
	"testing"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/vim25/methods"
)

func TestCallsNeedASession(t *testing.T) {
	tl := startLab(t, nil)
	ctx := context.Background()
	anon := tl.anonymous() // RetrieveServiceContent needs none
	if _, err := methods.GetCurrentTime(ctx, anon); faultName(err) != "NotAuthenticated" {
		t.Fatalf("CurrentTime without a session: %v, want NotAuthenticated", err)
	}
	if _, err := session.NewManager(anon).UserSession(ctx); faultName(err) != "NotAuthenticated" {
		t.Fatalf("currentSession without a session: %v, want NotAuthenticated", err)
	}
}

func TestExpiredSessionsGetNotAuthenticatedAndANewLoginWorks(t *testing.T) {
	tl := startLab(t, nil)
	ctx := context.Background()
	c := tl.connect()
	if _, err := methods.GetCurrentTime(ctx, c); err != nil {
		t.Fatalf("logged in: %v", err)
	}
	if n := tl.stats().Sessions; n != 1 {
		t.Fatalf("sessions: %d, want 1", n)
	}
	var expired expiredResponse
	tl.mustCall("POST", "/lab/expire-sessions", map[string]interface{}{}, &expired)
	if expired.Expired != 1 || tl.stats().Sessions != 0 {
		t.Fatalf("expired %d sessions, %d left", expired.Expired, tl.stats().Sessions)
	}
	if _, err := methods.GetCurrentTime(ctx, c); faultName(err) != "NotAuthenticated" {
		t.Fatalf("after expiry: %v, want NotAuthenticated", err)
	}
	spec := tl.built.lab.spec
	if err := session.NewManager(c).Login(ctx, url.UserPassword(spec.User, spec.Password)); err != nil {
		t.Fatalf("a new login after expiry: %v", err)
	}
	if _, err := methods.GetCurrentTime(ctx, c); err != nil {
		t.Fatalf("after the new login: %v", err)
	}
	if err := session.NewManager(c).Logout(ctx); err != nil {
		t.Fatalf("logout: %v", err)
	}
	if n := tl.stats().Sessions; n != 0 {
		t.Fatalf("sessions after logout: %d", n)
	}
}

func TestOnlyTheSpecsCredentialsLogIn(t *testing.T) {
	tl := startLab(t, func(s *Spec) { s.User, s.Password = "trainer", "s3cret" })
	ctx := context.Background()
	for _, wrong := range []*url.Userinfo{url.UserPassword("trainer", "lab-password"), url.UserPassword("clones", "s3cret")} {
		u := tl.sdkURL()
		u.User = wrong
		if _, err := govmomi.NewClient(ctx, u, true); faultName(err) != "InvalidLogin" {
			t.Fatalf("login as %v: %v, want InvalidLogin", wrong, err)
		}
	}
	tl.connect()
}
