package main

// Lab spec: parsing, defaults and validation. This is the only validator of a spec: the Python
// launcher asks `clones-lab --check --spec FILE` (main.go). docs/lab-spec.md is the reference.
// Every problem of a spec is reported, one sentence each.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/ioutil"
	"strings"
)

const gib = int64(1) << 30

// ClusterSpec is one cluster with N hosts.
type ClusterSpec struct {
	Name  string `json:"name"`
	Hosts int    `json:"hosts"`
}

// DatastoreSpec is one datastore shared by every host of every cluster.
type DatastoreSpec struct {
	Name       string  `json:"name"`
	CapacityGB float64 `json:"capacity_gb"`
	FreeGB     float64 `json:"free_gb"`
}

// ParentSpec is one parent VM (powered off, no snapshot).
type ParentSpec struct {
	Name      string  `json:"name"`
	DiskGB    float64 `json:"disk_gb"`
	UsedGB    float64 `json:"used_gb"`
	DeltaGB   float64 `json:"delta_gb"`
	MemoryMB  int     `json:"memory_mb"`
	NumCPUs   int     `json:"num_cpus"`
	GuestID   string  `json:"guest_id"`
	Folder    string  `json:"folder"`
	Cluster   string  `json:"cluster"`
	Datastore string  `json:"datastore"`
	// Thin (default true) and DiskMode (default "persistent") shape the parent's one disk, so a
	// spec can show a thick or an independent parent disk (what `prepare` must report).
	Thin     *bool  `json:"thin"`
	DiskMode string `json:"disk_mode"`
}

// parentDiskModes lists the vSphere disk modes accepted by parents[].disk_mode.
var parentDiskModes = []string{"persistent", "nonpersistent", "undoable", "independent_persistent",
	"independent_nonpersistent", "append"}

// FaultSpec configures fault injection (faults.go); POST /lab/config changes it.
type FaultSpec struct {
	FailNth      []int   `json:"fail_nth"`
	FailFraction float64 `json:"fail_fraction"`
	Fault        string  `json:"fault"`
	Seed         int64   `json:"seed"`
	// FullCopyNth lists CloneVM_Task calls (same ordinals as FailNth) that succeed but come out
	// as a full copy whatever diskMoveType says: the silent trap the bot must detect.
	FullCopyNth []int `json:"full_copy_nth"`
	// Guest customization (customize.go): VMs whose customization fails, by name or by the
	// ordinal of the customization run (counted since start or the last POST /lab/reset).
	CustomizationFailNames []string `json:"customization_fail_names"`
	CustomizationFailNth   []int    `json:"customization_fail_nth"`
	// The steps after a clone task (stepfaults.go): calls refused with a chosen fault, and
	// vCenter lost right after the reply of the CloneVM_Task calls OutageAfterCloneNth names
	// (same ordinals as FailNth) for OutageAfterCloneS seconds, every session ended.
	Refuse              []RefuseSpec `json:"refuse"`
	OutageAfterCloneNth []int        `json:"outage_after_clone_nth"`
	OutageAfterCloneS   float64      `json:"outage_after_clone_s"`
}

// Spec is the whole lab description.
type Spec struct {
	Datacenter     string          `json:"datacenter"`
	Clusters       []ClusterSpec   `json:"clusters"`
	Datastores     []DatastoreSpec `json:"datastores"`
	Folders        []string        `json:"folders"`
	Parents        []ParentSpec    `json:"parents"`
	CloneLatencyMS int             `json:"clone_latency_ms"`
	// DeltaGrowthGBPerMin: how much a clone's disk grows per minute while it is powered on
	// (storage.go), so a delta grows as a used Windows clone's does; 0 (the default): never.
	DeltaGrowthGBPerMin float64 `json:"delta_growth_gb_per_min"`
	DestroyLatencyMS    int     `json:"destroy_latency_ms"`
	PowerOnLatencyMS    int     `json:"power_on_latency_ms"`
	// How long a finished task stays readable before the lab forgets it (reaper.go).
	TaskRetentionS float64   `json:"task_retention_s"`
	Faults         FaultSpec `json:"faults"`
	User           string    `json:"user"`
	Password       string    `json:"password"`
	// Guest customization (customize.go).
	CustomizationSpecs     []CustomizationSpecSpec `json:"customization_specs"`
	CustomizationLatencyMS int                     `json:"customization_latency_ms"`
	// Privileges the lab's user holds on every entity, as answered to privilege queries
	// (privileges.go); absent (nil): every privilege of the Admin role.
	Privileges []string `json:"privileges"`
}

// defaultSpec is a spec with every default but parents.
func defaultSpec() *Spec {
	return &Spec{
		Datacenter: "DC0",
		Clusters:   []ClusterSpec{{Name: "Training", Hosts: 8}},
		Datastores: []DatastoreSpec{{Name: "TrainingDS", CapacityGB: 500, FreeGB: 480}},
		Folders:    []string{"Parents", "Training"},
		Faults:     FaultSpec{Fault: "FileLocked", Seed: 1},
		// Long enough for any client to read a task's outcome; short enough that a lab making
		// and destroying clones all day keeps a steady size.
		TaskRetentionS: 10,
		User:           "clones",
		Password:       "lab-password",
	}
}

// LoadSpec reads, defaults and validates a spec file; a malformed spec gives a problemList.
func LoadSpec(path string) (*Spec, error) {
	data, err := ioutil.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read spec %s: %v", path, err)
	}
	return ParseSpec(data)
}

// ParseSpec parses, defaults and validates a spec; a malformed spec gives a problemList.
func ParseSpec(data []byte) (*Spec, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		if syntax, ok := err.(*json.SyntaxError); ok {
			line, column := position(data, syntax.Offset-1) // Offset is just past the bad character
			return nil, problemList{fmt.Sprintf("spec is not valid JSON: %v (line %d, column %d)", err, line, column)}
		}
		return nil, problemList{"spec is not a JSON object"}
	}
	var p problems
	spec := defaultSpec()
	decodeObject("", data, spec, &p)
	if _, ok := raw["parents"]; !ok {
		p.add(`spec has no "parents": list at least one parent VM`)
	}
	if len(p) == 0 { // the rules below need values of the right types
		spec.fillDefaults()
		spec.validate(&p)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return spec, nil
}

// fillDefaults gives parents the defaults of the fields they leave out.
func (s *Spec) fillDefaults() {
	for i := range s.Parents {
		p := &s.Parents[i]
		if p.MemoryMB == 0 {
			p.MemoryMB = 1024
		}
		if p.NumCPUs == 0 {
			p.NumCPUs = 1
		}
		if p.GuestID == "" {
			p.GuestID = "windows9_64Guest"
		}
		if p.Thin == nil {
			p.Thin = newBool(true)
		}
		if p.DiskMode == "" {
			p.DiskMode = "persistent"
		}
		if p.Cluster == "" && len(s.Clusters) > 0 {
			p.Cluster = s.Clusters[0].Name
		}
		if p.Datastore == "" && len(s.Datastores) > 0 {
			p.Datastore = s.Datastores[0].Name
		}
	}
}

// withLists is the spec with empty lists where it has none (how --check prints it).
func (s Spec) withLists() Spec {
	s.Faults = s.Faults.withLists()
	if s.CustomizationSpecs == nil {
		s.CustomizationSpecs = []CustomizationSpecSpec{}
	}
	return s
}

func (s *Spec) validate(p *problems) {
	if strings.TrimSpace(s.Datacenter) == "" {
		p.add("datacenter: must be a non-empty name")
	}
	if s.User == "" || s.Password == "" {
		p.add("user/password: must be non-empty")
	}
	clusters := s.validateClusters(p)
	datastores := s.validateDatastores(p)
	folders := s.validateFolders(p)
	s.validateParents(p, clusters, datastores, folders)
	privilegeProblems(s.Privileges, p)
	if s.CloneLatencyMS < 0 || s.DestroyLatencyMS < 0 || s.PowerOnLatencyMS < 0 {
		p.add("clone_latency_ms/destroy_latency_ms/power_on_latency_ms: must be 0 or more")
	}
	growthProblems(s.DeltaGrowthGBPerMin, p)
	if s.TaskRetentionS < 1 || s.TaskRetentionS > 86400 {
		p.add("task_retention_s: must be from 1 to 86400 seconds (a client must have time to read a task it started)")
	}
	s.validateCustomization(p)
	s.Faults.validate(p)
}

// validateClusters checks the clusters and returns their names.
func (s *Spec) validateClusters(p *problems) map[string]bool {
	if len(s.Clusters) == 0 {
		p.add("clusters: list at least one cluster")
	}
	names := map[string]bool{}
	for i, c := range s.Clusters {
		switch {
		case strings.TrimSpace(c.Name) == "":
			p.add("clusters[%d]: name must be non-empty", i)
		case names[c.Name]:
			p.add("clusters[%d]: duplicate cluster name %q", i, c.Name)
		}
		names[c.Name] = true
		if c.Hosts < 1 || c.Hosts > 512 {
			p.add("clusters[%d] %q: hosts must be between 1 and 512, got %d", i, c.Name, c.Hosts)
		}
	}
	return names
}

// validateDatastores checks the datastores and returns their names.
func (s *Spec) validateDatastores(p *problems) map[string]bool {
	if len(s.Datastores) == 0 {
		p.add("datastores: list at least one datastore")
	}
	names := map[string]bool{}
	for i, d := range s.Datastores {
		switch {
		case strings.TrimSpace(d.Name) == "" || strings.ContainsAny(d.Name, "[]/"):
			p.add("datastores[%d]: name must be non-empty and contain no '[', ']' or '/'", i)
		case names[d.Name]:
			p.add("datastores[%d]: duplicate datastore name %q", i, d.Name)
		}
		names[d.Name] = true
		if d.CapacityGB <= 0 {
			p.add("datastores[%d] %q: capacity_gb must be positive, got %v", i, d.Name, d.CapacityGB)
		} else if d.FreeGB < 0 || d.FreeGB > d.CapacityGB {
			p.add("datastores[%d] %q: free_gb must be between 0 and capacity_gb, got %v", i, d.Name, d.FreeGB)
		}
	}
	return names
}

// validateFolders checks the folder paths and returns them ("" too: the vm folder itself).
func (s *Spec) validateFolders(p *problems) map[string]bool {
	folders := map[string]bool{"": true}
	for i, f := range s.Folders {
		switch {
		case strings.TrimSpace(f) == "" || strings.HasPrefix(f, "/") || strings.HasSuffix(f, "/") || strings.Contains(f, "//"):
			p.add("folders[%d]: %q is not a folder path (use \"Name\" or \"Parent/Child\")", i, f)
		case folders[f]:
			p.add("folders[%d]: duplicate folder %q", i, f)
		}
		folders[f] = true
	}
	return folders
}

func (s *Spec) validateParents(p *problems, clusters, datastores, folders map[string]bool) {
	if len(s.Parents) == 0 {
		p.add("parents: list at least one parent VM")
	}
	names := map[string]bool{}
	for i, ps := range s.Parents {
		where := fmt.Sprintf("parents[%d] %q", i, ps.Name)
		switch {
		case strings.TrimSpace(ps.Name) == "":
			p.add("parents[%d]: name must be non-empty", i)
		case names[ps.Name]:
			p.add("parents[%d]: duplicate parent name %q", i, ps.Name)
		}
		names[ps.Name] = true
		if ps.DiskGB <= 0 {
			p.add("%s: disk_gb must be positive, got %v", where, ps.DiskGB)
		} else { // used and delta are checked against a valid disk size only
			if ps.UsedGB < 0 || ps.UsedGB > ps.DiskGB {
				p.add("%s: used_gb must be between 0 and disk_gb, got %v", where, ps.UsedGB)
			}
			if ps.DeltaGB < 0 || ps.DeltaGB > ps.DiskGB {
				p.add("%s: delta_gb must be between 0 and disk_gb, got %v", where, ps.DeltaGB)
			}
		}
		if ps.MemoryMB < 0 {
			p.add("%s: memory_mb must be positive, got %d", where, ps.MemoryMB)
		}
		if ps.NumCPUs < 0 {
			p.add("%s: num_cpus must be positive, got %d", where, ps.NumCPUs)
		}
		if !contains(parentDiskModes, ps.DiskMode) {
			p.add("%s: disk_mode %q is not a disk mode (known: %s)", where, ps.DiskMode, strings.Join(parentDiskModes, ", "))
		}
		if !folders[ps.Folder] {
			p.add("%s: folder %q is not in \"folders\"", where, ps.Folder)
		}
		if len(clusters) > 0 && !clusters[ps.Cluster] {
			p.add("%s: cluster %q is not in \"clusters\"", where, ps.Cluster)
		}
		if len(datastores) > 0 && !datastores[ps.Datastore] {
			p.add("%s: datastore %q is not in \"datastores\"", where, ps.Datastore)
		}
	}
}

// growthProblems checks delta_growth_gb_per_min (the spec's, or a POST /lab/config's).
func growthProblems(gbPerMin float64, p *problems) {
	if gbPerMin < 0 {
		p.add("delta_growth_gb_per_min: must be 0 or more (GB a minute), got %v", gbPerMin)
	}
}

func (f *FaultSpec) validate(p *problems) {
	for _, n := range f.FailNth {
		if n < 1 {
			p.add("faults.fail_nth: ordinals start at 1, got %d", n)
		}
	}
	for _, n := range f.FullCopyNth {
		if n < 1 {
			p.add("faults.full_copy_nth: ordinals start at 1, got %d", n)
		}
	}
	f.validateCustomization(p)
	for i, r := range f.Refuse {
		r.validate(i, p)
	}
	for _, n := range f.OutageAfterCloneNth {
		if n < 1 {
			p.add("faults.outage_after_clone_nth: ordinals start at 1, got %d", n)
		}
	}
	if f.OutageAfterCloneS < 0 {
		p.add("faults.outage_after_clone_s: must be 0 or more, got %v", f.OutageAfterCloneS)
	}
	if f.FailFraction < 0 || f.FailFraction > 1 {
		p.add("faults.fail_fraction: must be between 0 and 1, got %v", f.FailFraction)
	}
	if !isKnownFault(f.Fault) {
		p.add("faults.fault: unknown fault %q (known: %s)", f.Fault, strings.Join(knownFaults(), ", "))
	}
}

// withLists is the faults with empty lists where they have none (how the control API shows them).
func (f FaultSpec) withLists() FaultSpec {
	if f.FailNth == nil {
		f.FailNth = []int{}
	}
	if f.FullCopyNth == nil {
		f.FullCopyNth = []int{}
	}
	if f.CustomizationFailNames == nil {
		f.CustomizationFailNames = []string{}
	}
	if f.CustomizationFailNth == nil {
		f.CustomizationFailNth = []int{}
	}
	f.Refuse = append([]RefuseSpec{}, f.Refuse...) // a copy: the lab's own list is shared
	for i := range f.Refuse {
		if f.Refuse[i].Nth == nil {
			f.Refuse[i].Nth = []int{}
		}
	}
	if f.OutageAfterCloneNth == nil {
		f.OutageAfterCloneNth = []int{}
	}
	return f
}

// position is the line and column (from 1) of a byte offset in data.
func position(data []byte, offset int64) (int, int) {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	if offset < 0 {
		offset = 0
	}
	before := data[:offset]
	line := bytes.Count(before, []byte("\n")) + 1
	return line, len(before) - bytes.LastIndexByte(before, '\n')
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func newBool(b bool) *bool { return &b }
