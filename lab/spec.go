package main

// Lab spec: parsing, defaults and validation. The Python side (bot/lab.py, validate_spec) applies
// the same rules; docs/lab-spec.md is the reference.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/ioutil"
	"sort"
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

// FaultSpec configures fault injection for CloneVM_Task.
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
}

// Spec is the whole lab description.
type Spec struct {
	Datacenter       string          `json:"datacenter"`
	Clusters         []ClusterSpec   `json:"clusters"`
	Datastores       []DatastoreSpec `json:"datastores"`
	Folders          []string        `json:"folders"`
	Parents          []ParentSpec    `json:"parents"`
	CloneLatencyMS   int             `json:"clone_latency_ms"`
	DestroyLatencyMS int             `json:"destroy_latency_ms"`
	Faults           FaultSpec       `json:"faults"`
	User             string          `json:"user"`
	Password         string          `json:"password"`
	// Guest customization (customize.go).
	CustomizationSpecs     []CustomizationSpecSpec `json:"customization_specs"`
	CustomizationLatencyMS int                     `json:"customization_latency_ms"`
	// Privileges the lab's user holds on every entity, as answered to privilege queries
	// (privileges.go); absent (nil): every privilege of the Admin role.
	Privileges []string `json:"privileges"`
}

// knownFaults lists the fault names accepted by faults.fault (see faultFor in server.go).
var knownFaults = []string{
	"FileLocked", "InsufficientDiskSpace", "InsufficientStorageSpace", "DuplicateName", "TaskInProgress",
	"HostCommunication", "Timedout", "InvalidArgument", "SystemError",
	"NoDiskSpace", "InvalidState", "ResourceInUse",
}

func isKnownFault(name string) bool {
	for _, f := range knownFaults {
		if f == name {
			return true
		}
	}
	return false
}

var topLevelKeys = []string{
	"datacenter", "clusters", "datastores", "folders", "parents", "clone_latency_ms",
	"destroy_latency_ms", "faults", "user", "password", "customization_specs", "customization_latency_ms",
	"privileges",
}

func checkKeys(where string, raw map[string]json.RawMessage, allowed []string) error {
	var unknown []string
	for k := range raw {
		ok := false
		for _, a := range allowed {
			if k == a {
				ok = true
				break
			}
		}
		if !ok && !strings.HasPrefix(k, "_") { // "_comment" and friends are allowed
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("%s: unknown field %q (allowed: %s)", where, unknown[0], strings.Join(allowed, ", "))
	}
	return nil
}

func strictObjects(where string, data json.RawMessage, allowed []string) error {
	var items []map[string]json.RawMessage
	if err := json.Unmarshal(data, &items); err != nil {
		return fmt.Errorf("%s: must be a list of objects", where)
	}
	for i, item := range items {
		if err := checkKeys(fmt.Sprintf("%s[%d]", where, i), item, allowed); err != nil {
			return err
		}
	}
	return nil
}

// LoadSpec reads, defaults and validates a spec file.
func LoadSpec(path string) (*Spec, error) {
	data, err := ioutil.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read spec %s: %v", path, err)
	}
	return ParseSpec(data)
}

// ParseSpec parses, defaults and validates a spec.
func ParseSpec(data []byte) (*Spec, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("spec is not a JSON object: %v", err)
	}
	if err := checkKeys("spec", raw, topLevelKeys); err != nil {
		return nil, err
	}
	nested := map[string][]string{
		"clusters":   {"name", "hosts"},
		"datastores": {"name", "capacity_gb", "free_gb"},
		"parents": {"name", "disk_gb", "used_gb", "delta_gb", "memory_mb", "num_cpus", "guest_id",
			"folder", "cluster", "datastore", "thin", "disk_mode"},
		"customization_specs": customizationSpecKeys,
	}
	for key, allowed := range nested {
		if v, ok := raw[key]; ok {
			if err := strictObjects(key, v, allowed); err != nil {
				return nil, err
			}
		}
	}
	if v, ok := raw["faults"]; ok {
		var f map[string]json.RawMessage
		if err := json.Unmarshal(v, &f); err != nil {
			return nil, fmt.Errorf("faults: must be an object")
		}
		if err := checkKeys("faults", f, faultKeys); err != nil {
			return nil, err
		}
	}

	spec := &Spec{
		Datacenter: "DC0",
		Clusters:   []ClusterSpec{{Name: "Training", Hosts: 8}},
		Datastores: []DatastoreSpec{{Name: "TrainingDS", CapacityGB: 500, FreeGB: 480}},
		Folders:    []string{"Parents", "Training"},
		Faults:     FaultSpec{Fault: "FileLocked", Seed: 1},
		User:       "clones",
		Password:   "lab-password",
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(spec); err != nil {
		return nil, fmt.Errorf("spec has a field of the wrong type: %v", err)
	}
	if _, ok := raw["parents"]; !ok {
		return nil, fmt.Errorf("spec has no \"parents\": list at least one parent VM")
	}
	if err := spec.validate(); err != nil {
		return nil, err
	}
	return spec, nil
}

func (s *Spec) validate() error {
	if strings.TrimSpace(s.Datacenter) == "" {
		return fmt.Errorf("datacenter: must be a non-empty name")
	}
	if s.User == "" || s.Password == "" {
		return fmt.Errorf("user/password: must be non-empty")
	}
	if len(s.Clusters) == 0 {
		return fmt.Errorf("clusters: list at least one cluster")
	}
	clusters := map[string]bool{}
	for i, c := range s.Clusters {
		if strings.TrimSpace(c.Name) == "" {
			return fmt.Errorf("clusters[%d]: name must be non-empty", i)
		}
		if clusters[c.Name] {
			return fmt.Errorf("clusters[%d]: duplicate cluster name %q", i, c.Name)
		}
		clusters[c.Name] = true
		if c.Hosts < 1 || c.Hosts > 512 {
			return fmt.Errorf("clusters[%d] %q: hosts must be between 1 and 512, got %d", i, c.Name, c.Hosts)
		}
	}
	if len(s.Datastores) == 0 {
		return fmt.Errorf("datastores: list at least one datastore")
	}
	datastores := map[string]bool{}
	for i, d := range s.Datastores {
		if strings.TrimSpace(d.Name) == "" || strings.ContainsAny(d.Name, "[]/") {
			return fmt.Errorf("datastores[%d]: name must be non-empty and contain no '[', ']' or '/'", i)
		}
		if datastores[d.Name] {
			return fmt.Errorf("datastores[%d]: duplicate datastore name %q", i, d.Name)
		}
		datastores[d.Name] = true
		if d.CapacityGB <= 0 {
			return fmt.Errorf("datastores[%d] %q: capacity_gb must be positive, got %v", i, d.Name, d.CapacityGB)
		}
		if d.FreeGB < 0 || d.FreeGB > d.CapacityGB {
			return fmt.Errorf("datastores[%d] %q: free_gb must be between 0 and capacity_gb, got %v", i, d.Name, d.FreeGB)
		}
	}
	folders := map[string]bool{"": true}
	for i, f := range s.Folders {
		if strings.TrimSpace(f) == "" || strings.HasPrefix(f, "/") || strings.HasSuffix(f, "/") || strings.Contains(f, "//") {
			return fmt.Errorf("folders[%d]: %q is not a folder path (use \"Name\" or \"Parent/Child\")", i, f)
		}
		if folders[f] {
			return fmt.Errorf("folders[%d]: duplicate folder %q", i, f)
		}
		folders[f] = true
	}
	if len(s.Parents) == 0 {
		return fmt.Errorf("parents: list at least one parent VM")
	}
	parents := map[string]bool{}
	for i := range s.Parents {
		p := &s.Parents[i]
		where := fmt.Sprintf("parents[%d] %q", i, p.Name)
		if strings.TrimSpace(p.Name) == "" {
			return fmt.Errorf("parents[%d]: name must be non-empty", i)
		}
		if parents[p.Name] {
			return fmt.Errorf("parents[%d]: duplicate parent name %q", i, p.Name)
		}
		parents[p.Name] = true
		if p.DiskGB <= 0 {
			return fmt.Errorf("%s: disk_gb must be positive, got %v", where, p.DiskGB)
		}
		if p.UsedGB < 0 || p.UsedGB > p.DiskGB {
			return fmt.Errorf("%s: used_gb must be between 0 and disk_gb, got %v", where, p.UsedGB)
		}
		if p.DeltaGB < 0 || p.DeltaGB > p.DiskGB {
			return fmt.Errorf("%s: delta_gb must be between 0 and disk_gb, got %v", where, p.DeltaGB)
		}
		if p.MemoryMB == 0 {
			p.MemoryMB = 1024
		}
		if p.MemoryMB < 0 {
			return fmt.Errorf("%s: memory_mb must be positive, got %d", where, p.MemoryMB)
		}
		if p.NumCPUs == 0 {
			p.NumCPUs = 1
		}
		if p.NumCPUs < 0 {
			return fmt.Errorf("%s: num_cpus must be positive, got %d", where, p.NumCPUs)
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
		knownMode := false
		for _, m := range parentDiskModes {
			knownMode = knownMode || m == p.DiskMode
		}
		if !knownMode {
			return fmt.Errorf("%s: disk_mode %q is not a disk mode (known: %s)", where, p.DiskMode, strings.Join(parentDiskModes, ", "))
		}
		if p.Cluster == "" {
			p.Cluster = s.Clusters[0].Name
		}
		if p.Datastore == "" {
			p.Datastore = s.Datastores[0].Name
		}
		if !folders[p.Folder] {
			return fmt.Errorf("%s: folder %q is not in \"folders\"", where, p.Folder)
		}
		if !clusters[p.Cluster] {
			return fmt.Errorf("%s: cluster %q is not in \"clusters\"", where, p.Cluster)
		}
		if !datastores[p.Datastore] {
			return fmt.Errorf("%s: datastore %q is not in \"datastores\"", where, p.Datastore)
		}
	}
	if err := validatePrivileges(s.Privileges); err != nil {
		return err
	}
	if s.CloneLatencyMS < 0 || s.DestroyLatencyMS < 0 {
		return fmt.Errorf("clone_latency_ms/destroy_latency_ms: must be 0 or more")
	}
	if err := s.validateCustomization(); err != nil {
		return err
	}
	return s.Faults.validate()
}

func (f *FaultSpec) validate() error {
	for _, n := range f.FailNth {
		if n < 1 {
			return fmt.Errorf("faults.fail_nth: ordinals start at 1, got %d", n)
		}
	}
	for _, n := range f.FullCopyNth {
		if n < 1 {
			return fmt.Errorf("faults.full_copy_nth: ordinals start at 1, got %d", n)
		}
	}
	if err := f.validateCustomization(); err != nil {
		return err
	}
	if f.FailFraction < 0 || f.FailFraction > 1 {
		return fmt.Errorf("faults.fail_fraction: must be between 0 and 1, got %v", f.FailFraction)
	}
	if !isKnownFault(f.Fault) {
		return fmt.Errorf("faults.fault: unknown fault %q (known: %s)", f.Fault, strings.Join(knownFaults, ", "))
	}
	return nil
}

func newBool(b bool) *bool { return &b }

// validatePrivileges checks privilege ids look like vSphere's ("Group.Sub.Name").
func validatePrivileges(list []string) error {
	for i, p := range list {
		if !strings.Contains(p, ".") || strings.ContainsAny(p, " \t") {
			return fmt.Errorf("privileges[%d]: %q is not a privilege id (e.g. \"VirtualMachine.Provisioning.Clone\")", i, p)
		}
	}
	return nil
}
