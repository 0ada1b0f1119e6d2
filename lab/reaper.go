package main

// Finished tasks are forgotten, as vCenter forgets them: the simulator puts every Task it
// creates (CloneVM_Task, PowerOnVM_Task, Destroy_Task, ReconfigVM_Task...) in its registry and
// never takes one out, so a lab that made and destroyed thousands of clones kept every one of
// their tasks (about 6 KB each, seven or so per clone made and destroyed: its RSS grew by some
// 50 KB per clone, without bound). Here a task that has finished is removed from the registry
// (and from TaskManager.recentTask) once it has been over for task_retention_s, which leaves a
// client ample time to read its outcome; a client that reads it later gets ManagedObjectNotFound,
// as it would from vCenter once the task has aged out. Nothing is removed while the lab is paused
// or for task_retention_s after a pause ends, so a client that comes back from an outage still
// finds the tasks it was waiting for. Once many tasks went, the memory is handed back to the
// system (a destroyed VM's own objects are removed by the simulator itself, and the lab's own
// records of a VM by its hooks on Destroy_Task: storage.go, customize.go, drs.go).

import (
	"runtime/debug"
	"sync"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/simulator/vpx"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// reaperRef is the moref the task reaper registers under as a registry handler (never served).
var reaperRef = types.ManagedObjectReference{Type: "LabTaskReaper", Value: "lab-task-reaper"}

const (
	reapEvery      = time.Second // how often finished tasks are looked at
	freeAfterTasks = 500         // hand memory back once this many tasks went since the last time
	freeAtMostEach = 5 * time.Second
)

// taskReaper tracks every Task the simulator creates and removes finished ones once they aged.
type taskReaper struct {
	mu        sync.Mutex
	retention time.Duration
	tasks     []types.ManagedObjectReference // in creation order
	outage    *outage
	removed   int // since memory was last handed back
	freedAt   time.Time
	total     int // tasks removed since start
	stop      chan struct{}
	stopOnce  sync.Once
}

func newTaskReaper(retention time.Duration, o *outage) *taskReaper {
	return &taskReaper{retention: retention, outage: o, stop: make(chan struct{})}
}

// Reference, PutObject, UpdateObject and RemoveObject make the reaper a registry handler
// (simulator.RegisterObject): it hears of every object put in the registry.
func (r *taskReaper) Reference() types.ManagedObjectReference { return reaperRef }

func (r *taskReaper) PutObject(obj mo.Reference) {
	ref := obj.Reference()
	if ref.Type != "Task" {
		return
	}
	r.mu.Lock()
	r.tasks = append(r.tasks, ref)
	r.mu.Unlock()
}

func (*taskReaper) UpdateObject(mo.Reference, []types.PropertyChange) {}

func (*taskReaper) RemoveObject(types.ManagedObjectReference) {}

// start registers the reaper with the simulator and sweeps every reapEvery until close.
func (r *taskReaper) start() {
	simulator.Map.AddHandler(r)
	go func() {
		ticker := time.NewTicker(reapEvery)
		defer ticker.Stop()
		for {
			select {
			case <-r.stop:
				return
			case now := <-ticker.C:
				r.sweep(now)
			}
		}
	}()
}

// stopSweeping stops the periodic sweep (tasks are still tracked; tests sweep by hand).
func (r *taskReaper) stopSweeping() {
	r.stopOnce.Do(func() { close(r.stop) })
}

func (r *taskReaper) close() {
	r.stopSweeping()
	simulator.Map.RemoveHandler(r)
}

func (r *taskReaper) setRetention(d time.Duration) {
	r.mu.Lock()
	r.retention = d
	r.mu.Unlock()
}

// tracked is how many tasks the reaper still holds (finished or not).
func (r *taskReaper) tracked() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.tasks)
}

// sweep removes the tasks that finished more than the retention before now, and returns how
// many went.
func (r *taskReaper) sweep(now time.Time) int {
	if r.outage.within(now, r.retentionNow()) {
		return 0
	}
	r.mu.Lock()
	cutoff := now.Add(-r.retention)
	keep := r.tasks[:0]
	var gone []types.ManagedObjectReference
	for _, ref := range r.tasks {
		task, ok := simulator.Map.Get(ref).(*simulator.Task)
		if !ok {
			continue // removed by someone else
		}
		if finishedBefore(task, cutoff) {
			gone = append(gone, ref)
		} else {
			keep = append(keep, ref)
		}
	}
	for i := len(keep); i < len(r.tasks); i++ {
		r.tasks[i] = types.ManagedObjectReference{} // let the backing array drop the refs
	}
	r.tasks = keep
	r.mu.Unlock()
	if len(gone) == 0 {
		return 0
	}
	forgetRecent(gone)
	for _, ref := range gone {
		simulator.Map.Remove(ref)
	}
	r.handBack(len(gone), now)
	return len(gone)
}

func (r *taskReaper) retentionNow() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.retention
}

// handBack returns freed memory to the system once enough tasks went (the runtime would keep
// it for a while otherwise, and the lab's RSS would not come back down after a strip back).
func (r *taskReaper) handBack(n int, now time.Time) {
	r.mu.Lock()
	r.removed += n
	r.total += n
	due := r.removed >= freeAfterTasks && now.Sub(r.freedAt) >= freeAtMostEach
	if due {
		r.removed, r.freedAt = 0, now
	}
	r.mu.Unlock()
	if due {
		debug.FreeOSMemory()
	}
}

// finishedBefore tells whether the task succeeded or failed before cutoff.
func finishedBefore(task *simulator.Task, cutoff time.Time) bool {
	var over bool
	simulator.Map.WithLock(task, func() {
		state := task.Info.State
		done := state == types.TaskInfoStateSuccess || state == types.TaskInfoStateError
		over = done && task.Info.CompleteTime != nil && task.Info.CompleteTime.Before(cutoff)
	})
	return over
}

// forgetRecent takes tasks out of TaskManager.recentTask (which the simulator caps at 200).
func forgetRecent(gone []types.ManagedObjectReference) {
	tm, ok := simulator.Map.Get(*vpx.ServiceContent.TaskManager).(*simulator.TaskManager)
	if !ok {
		return
	}
	drop := make(map[types.ManagedObjectReference]bool, len(gone))
	for _, ref := range gone {
		drop[ref] = true
	}
	tm.Lock()
	defer tm.Unlock()
	recent := make([]types.ManagedObjectReference, 0, len(tm.RecentTask))
	for _, ref := range tm.RecentTask {
		if !drop[ref] {
			recent = append(recent, ref)
		}
	}
	if len(recent) != len(tm.RecentTask) {
		simulator.Map.Update(tm, []types.PropertyChange{{Name: "recentTask", Val: recent}})
	}
}
