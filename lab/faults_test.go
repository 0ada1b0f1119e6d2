package main

// Fault injection: fail_nth, full_copy_nth, fail_fraction and their ordinals, every known fault,
// and the latency left out of busy_ms.

import (
	"strings"
	"testing"

	"github.com/vmware/govmomi/task"
	"github.com/vmware/govmomi/vim25/types"
)

func TestFailNthFailsThoseCallsWithARealTask(t *testing.T) {
	tl := startLab(t, func(s *Spec) { s.Faults.FailNth = []int{2} })
	c := tl.connect()
	parent := tl.parent(c, "Capture")
	snap := tl.snapshot(parent)

	tl.mustClone(parent, "c1", tl.cloneSpec(&snap, linkedMove))
	_, err := tl.clone(parent, "c2", tl.cloneSpec(&snap, linkedMove))
	if faultName(err) != "FileLocked" {
		t.Fatalf("call 2: %v (%s), want FileLocked", err, faultName(err))
	}
	if msg := err.(task.Error).LocalizedMessage; !strings.Contains(msg, "since it is locked") {
		t.Fatalf("localized message %q is not vCenter's", msg)
	}
	if _, made := tl.vms()["c2"]; made {
		t.Fatal("a failed clone left a VM")
	}
	tl.mustClone(parent, "c3", tl.cloneSpec(&snap, linkedMove))
	if s := tl.stats(); s.Injected != 1 || s.CloneCalls != 3 {
		t.Fatalf("stats: injected %d of %d clone calls, want 1 of 3", s.Injected, s.CloneCalls)
	}

	// The ordinal counts again from a reset; a runtime fault replaces the spec's.
	tl.mustCall("POST", "/lab/reset", map[string]interface{}{}, nil)
	tl.mustCall("POST", "/lab/config", map[string]interface{}{"faults": map[string]interface{}{"fault": "InsufficientDiskSpace"}}, nil)
	tl.mustClone(parent, "c4", tl.cloneSpec(&snap, linkedMove))
	_, err = tl.clone(parent, "c5", tl.cloneSpec(&snap, linkedMove))
	if faultName(err) != "InsufficientStorageSpace" {
		t.Fatalf("after reset, call 2: %v (%s), want InsufficientStorageSpace (the alias's real type)", err, faultName(err))
	}
}

func TestFullCopyNthIgnoresDiskMoveType(t *testing.T) {
	tl := startLab(t, func(s *Spec) { s.Faults.FullCopyNth = []int{1} })
	c := tl.connect()
	parent := tl.parent(c, "Capture")
	snap := tl.snapshot(parent)

	first := tl.mustClone(parent, "first", tl.cloneSpec(&snap, linkedMove))
	second := tl.mustClone(parent, "second", tl.cloneSpec(&snap, linkedMove))
	if b := diskBackings(tl.props(first, "config.hardware.device")); b[0].Parent != nil {
		t.Fatal("full_copy_nth [1]: the first clone is linked")
	}
	if got := tl.props(first, "summary.storage").Summary.Storage.Committed; got != gbBytes(3.34) {
		t.Fatalf("a forced full copy commits %d, want the parent's used_gb", got)
	}
	if b := diskBackings(tl.props(second, "config.hardware.device")); b[0].Parent == nil {
		t.Fatal("the second clone should be linked")
	}
}

func TestFailFractionIsSeeded(t *testing.T) {
	outcomes := func() []bool {
		tl := startLab(t, func(s *Spec) { s.Faults.FailFraction = 0.5; s.Faults.Seed = 7 })
		c := tl.connect()
		parent := tl.parent(c, "Capture")
		var out []bool
		for _, name := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
			_, err := tl.clone(parent, name, tl.cloneSpec(nil, ""))
			out = append(out, err != nil)
		}
		return out
	}
	first, second := outcomes(), outcomes()
	failed := 0
	for i := range first {
		if first[i] != second[i] {
			t.Fatalf("same seed, different failures: %v and %v", first, second)
		}
		if first[i] {
			failed++
		}
	}
	if failed == 0 || failed == len(first) {
		t.Fatalf("fail_fraction 0.5 failed %d of %d calls", failed, len(first))
	}
}

func TestEveryKnownFaultIsMadeWithVCentersMessage(t *testing.T) {
	tl := startLab(t, nil)
	c := tl.connect()
	parent := tl.parent(c, "Capture")
	for i, name := range knownFaults() {
		tl.mustCall("POST", "/lab/config", map[string]interface{}{
			"faults": map[string]interface{}{"fault": name, "fail_fraction": 1.0}}, nil)
		_, err := tl.clone(parent, "f"+string(rune('a'+i)), tl.cloneSpec(nil, ""))
		want := name
		if name == "InsufficientDiskSpace" {
			want = "InsufficientStorageSpace"
		}
		if faultName(err) != want {
			t.Errorf("fault %s: got %v (%s)", name, err, faultName(err))
			continue
		}
		if msg := err.(task.Error).LocalizedMessage; strings.HasPrefix(msg, "*types.") || msg == "" {
			t.Errorf("fault %s: localized message %q", name, msg)
		}
	}
	var fault types.BaseMethodFault = newFault("NoSuchFault", nil, nil, "")
	if _, ok := fault.(*types.SystemError); !ok {
		t.Fatalf("an unknown name makes %T, want a SystemError", fault)
	}
}

func TestCloneLatencyIsLeftOutOfBusyTime(t *testing.T) {
	tl := startLab(t, func(s *Spec) { s.CloneLatencyMS = 400 })
	c := tl.connect()
	parent := tl.parent(c, "Capture")
	tl.mustCall("POST", "/lab/reset", nil, nil)
	tl.mustClone(parent, "slow", tl.cloneSpec(nil, ""))
	s := tl.stats()
	if busy := s.BusyMS["CloneVM_Task"]; busy <= 0 || busy >= 400 {
		t.Fatalf("busy_ms of a clone with 400 ms latency: %v, want the lab's own time only", busy)
	}
}
