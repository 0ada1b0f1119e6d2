package main

// The spec: defaults, every problem reported with where it is, and clones-lab --check.

import (
	"bytes"
	"encoding/json"
	"io/ioutil"
	"path/filepath"
	"strings"
	"testing"
)

func TestDefaultsAreFilledIn(t *testing.T) {
	spec, err := ParseSpec([]byte(`{"parents": [{"name": "P", "disk_gb": 4}], "_comment": "ignored"}`))
	if err != nil {
		t.Fatalf("minimal spec: %v", err)
	}
	p := spec.Parents[0]
	if spec.Datacenter != "DC0" || spec.Clusters[0].Name != "Training" || spec.Faults.Fault != "FileLocked" ||
		p.MemoryMB != 1024 || p.NumCPUs != 1 || !*p.Thin || p.DiskMode != "persistent" ||
		p.Cluster != "Training" || p.Datastore != "TrainingDS" || spec.Privileges != nil {
		t.Fatalf("defaults: %+v %+v", spec, p)
	}
}

func TestEveryProblemIsReportedWhereItIs(t *testing.T) {
	cases := []struct {
		spec string
		want []string
	}{
		{`{not json`, []string{"spec is not valid JSON: invalid character 'n' looking for beginning of object key string (line 1, column 2)"}},
		{"{\n  \"parents\": [,]}", []string{"spec is not valid JSON: invalid character ',' looking for beginning of value (line 2, column 15)"}},
		{`["a list"]`, []string{"spec is not a JSON object"}},
		{`{"datacenter": "DC0"}`, []string{`spec has no "parents"`}},
		{`{"parents": [{"name": "P", "disk_gb": 4, "thin": "no", "colour": "red"}], "size": 3, "clone_latency_ms": 1.5}`,
			[]string{
				`clone_latency_ms: must be a whole number, got number 1.5`,
				`parents[0]: unknown field "colour"`,
				`parents[0].thin: must be true or false, got string`,
				`spec: unknown field "size"`,
			}},
		{`{"parents": [{"name": "P", "disk_gb": -1, "cluster": "Nowhere", "disk_mode": "scratch"}, {"name": "P", "disk_gb": 1}],
		   "faults": {"fault": "Gremlins", "fail_nth": [0]}, "privileges": ["Read"],
		   "customization_specs": [{"name": "w", "kind": "windows-xp"}]}`,
			[]string{
				`parents[0] "P": disk_gb must be positive, got -1`,
				`parents[0] "P": disk_mode "scratch" is not a disk mode`,
				`parents[0] "P": cluster "Nowhere" is not in "clusters"`,
				`parents[1]: duplicate parent name "P"`,
				`privileges[0]: "Read" is not a privilege id`,
				`customization_specs[0] "w": kind must be "sysprep" or "linux", got "windows-xp"`,
				`faults.fail_nth: ordinals start at 1, got 0`,
				`faults.fault: unknown fault "Gremlins" (known: FileLocked, InsufficientDiskSpace`,
			}},
	}
	for _, c := range cases {
		_, err := ParseSpec([]byte(c.spec))
		list, ok := err.(problemList)
		if !ok {
			t.Fatalf("%s: %v is not a problem list", c.spec, err)
		}
		if len(list) != len(c.want) {
			t.Errorf("%s: %d problems, want %d:\n%s", c.spec, len(list), len(c.want), strings.Join(list, "\n"))
			continue
		}
		for i, want := range c.want {
			if !strings.HasPrefix(list[i], want) {
				t.Errorf("problem %d: %q, want it to start with %q", i, list[i], want)
			}
		}
	}
}

func TestCheckPrintsTheSpecOrOneLinePerProblem(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := runCheck("default-spec.json", &stdout, &stderr); code != 0 || stderr.Len() != 0 {
		t.Fatalf("default spec: exit %d, stderr %q", code, stderr.String())
	}
	var spec Spec
	if err := json.Unmarshal(stdout.Bytes(), &spec); err != nil || len(spec.Parents) != 3 || spec.Faults.FailNth == nil {
		t.Fatalf("--check output %s: %v", stdout.String(), err)
	}

	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := ioutil.WriteFile(bad, []byte(`{"parents": [], "clusters": [{"name": "C", "hosts": 0}]}`), 0600); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	if code := runCheck(bad, &stdout, &stderr); code != 2 || stdout.Len() != 0 {
		t.Fatalf("bad spec: exit %d, stdout %q", code, stdout.String())
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	want := []string{`clusters[0] "C": hosts must be between 1 and 512, got 0`, "parents: list at least one parent VM"}
	if len(lines) != len(want) {
		t.Fatalf("stderr:\n%s", stderr.String())
	}
	for i, w := range want {
		if lines[i] != "clones-lab: invalid spec "+bad+": "+w {
			t.Errorf("line %d: %q", i, lines[i])
		}
	}
	stderr.Reset()
	if code := runCheck(filepath.Join(t.TempDir(), "missing.json"), &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "cannot read spec") {
		t.Fatalf("missing file: exit %d, %q", code, stderr.String())
	}
}
