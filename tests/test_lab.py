"""The lab vCenter, exercised through pyvmomi over real SOAP (no mocks)."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim, vmodl

from bot.adapters.lab import (
    DEFAULT_SPEC,
    LabError,
    LabProcess,
    ensure_built,
    lab_down,
    lab_up,
    running_lab,
    validate_spec,
)
from bot.adapters.vcenter.operations import CUSTOMIZATION_EVENTS as OUTCOMES
from tests.helpers import at_once
from tests.vsphere import property_spec

pytestmark = pytest.mark.lab

GIB = 2**30
LINKED = "createNewChildDiskBacking"


# ------------------------------------------------------------------------------------------------
# helpers


def connect(lab: LabProcess, password: str | None = None) -> Any:
    info = lab.info
    return SmartConnect(
        host=info.host,
        port=info.port,
        user=info.user,
        pwd=info.password if password is None else password,
        protocol="http",
    )


@pytest.fixture
def si(lab: LabProcess) -> Iterator[Any]:
    conn = connect(lab)
    yield conn
    Disconnect(conn)


def find(si: Any, kind: type, name: str) -> Any:
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [kind], True)
    try:
        for obj in view.view:
            if obj.name == name:
                return obj
    finally:
        view.Destroy()
    return None


def all_of(si: Any, kind: type) -> list[Any]:
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [kind], True)
    try:
        return list(view.view)
    finally:
        view.Destroy()


def wait(task: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while task.info.state not in (vim.TaskInfo.State.success, vim.TaskInfo.State.error):
        assert time.monotonic() < deadline, "task did not finish"
        time.sleep(0.02)
    return task.info


def disks(vm: Any) -> list[Any]:
    return [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]


def snapshot(vm: Any, name: str = "base") -> Any:
    info = wait(vm.CreateSnapshot_Task(name=name, description="", memory=False, quiesce=False))
    assert info.state == "success", info.error
    return info.result


def clone_spec(
    si: Any,
    snap: Any | None = None,
    move: str | None = LINKED,
    cluster: str = "Training",
    host: Any | None = None,
) -> Any:
    pool = find(si, vim.ClusterComputeResource, cluster).resourcePool
    location = vim.vm.RelocateSpec(pool=pool, host=host)
    if move:
        location.diskMoveType = move
    return vim.vm.CloneSpec(location=location, powerOn=False, template=False, snapshot=snap)


def clone(si: Any, parent: Any, name: str, spec: Any, folder: str = "Training") -> Any:
    return wait(parent.CloneVM_Task(folder=find(si, vim.Folder, folder), name=name, spec=spec))


def datastore_free(si: Any) -> int:
    ds = find(si, vim.Datastore, "TrainingDS")
    return int(ds.summary.freeSpace)


# ------------------------------------------------------------------------------------------------
# inventory and figures


def test_inventory_names(si: Any) -> None:
    dcs = all_of(si, vim.Datacenter)
    assert [dc.name for dc in dcs] == ["DC0"]
    clusters = all_of(si, vim.ClusterComputeResource)
    assert [c.name for c in clusters] == ["Training"]
    assert len(clusters[0].host) == 8
    assert len(all_of(si, vim.HostSystem)) == 8
    stores = all_of(si, vim.Datastore)
    assert [d.name for d in stores] == ["TrainingDS"]
    assert stores[0].summary.capacity == 500 * GIB
    assert stores[0].summary.freeSpace == 480 * GIB
    assert {h.name for h in stores[0].host and [m.key for m in stores[0].host]} == {
        h.name for h in clusters[0].host
    }
    folders = {f.name for f in dcs[0].vmFolder.childEntity if isinstance(f, vim.Folder)}
    assert folders == {"Parents", "Training"}
    vms = all_of(si, vim.VirtualMachine)
    assert sorted(vm.name for vm in vms) == ["Capture", "Packaging", "Verification"]
    for vm in vms:
        assert vm.parent.name == "Parents"
        assert vm.runtime.powerState == "poweredOff"
        assert vm.snapshot is None
        assert vm.config.hardware.memoryMB == 1024
        assert vm.resourcePool == clusters[0].resourcePool
        assert vm.runtime.host in clusters[0].host
        (disk,) = disks(vm)
        assert disk.backing.thinProvisioned is True
        assert disk.backing.parent is None


@pytest.mark.parametrize(
    ("name", "disk_gb", "used_gb"),
    [("Capture", 11, 3.34), ("Packaging", 8, 3.72), ("Verification", 8, 2.49)],
)
def test_parent_storage_figures(si: Any, name: str, disk_gb: float, used_gb: float) -> None:
    vm = find(si, vim.VirtualMachine, name)
    (disk,) = disks(vm)
    assert disk.capacityInBytes == disk_gb * GIB
    storage = vm.summary.storage
    assert storage.committed == round(used_gb * GIB)
    assert storage.uncommitted == round(disk_gb * GIB) - round(used_gb * GIB)
    assert storage.unshared == round(used_gb * GIB)
    (usage,) = vm.storage.perDatastoreUsage
    assert usage.datastore.name == "TrainingDS"
    assert usage.committed == storage.committed


# ------------------------------------------------------------------------------------------------
# clones


def test_linked_clone_from_snapshot(si: Any, lab: LabProcess) -> None:
    parent = find(si, vim.VirtualMachine, "Capture")
    parent_file = disks(parent)[0].backing.fileName
    snap = snapshot(parent)
    assert [s.name for s in parent.snapshot.rootSnapshotList] == ["base"]
    free_before = datastore_free(si)

    info = clone(si, parent, "cap-01", clone_spec(si, snap))
    assert info.state == "success", info.error
    vm = info.result
    assert vm.name == "cap-01" and vm.parent.name == "Training"
    (disk,) = disks(vm)
    assert disk.backing.parent is not None
    assert disk.backing.parent.fileName == parent_file
    assert disk.backing.fileName != parent_file
    assert disk.capacityInBytes == 11 * GIB
    delta = round(0.13 * GIB)
    assert vm.summary.storage.committed == delta
    assert vm.summary.storage.uncommitted == 11 * GIB - delta
    assert vm.summary.storage.unshared == delta
    assert datastore_free(si) == free_before - delta
    assert vm.runtime.host in find(si, vim.ClusterComputeResource, "Training").host
    # The parent is untouched: same disk file, no backing parent, still one disk.
    (pdisk,) = disks(parent)
    assert pdisk.backing.fileName == parent_file
    assert pdisk.backing.parent is None

    second = clone(si, parent, "cap-02", clone_spec(si, snap)).result
    assert second.config.instanceUuid != vm.config.instanceUuid
    assert second.runtime.host != vm.runtime.host  # spread over the cluster's hosts

    entries = {v["name"]: v for v in lab.control.vms()}
    assert entries["cap-01"]["linked"] is True
    assert entries["cap-01"]["parent"] == "Capture"
    assert entries["cap-01"]["committed"] == delta

    assert wait(vm.Destroy_Task()).state == "success"
    assert wait(second.Destroy_Task()).state == "success"
    assert datastore_free(si) == free_before
    assert disks(parent)[0].backing.fileName == parent_file
    assert find(si, vim.VirtualMachine, "cap-01") is None


def test_clone_without_snapshot_is_full_copy(si: Any) -> None:
    parent = find(si, vim.VirtualMachine, "Packaging")
    free_before = datastore_free(si)
    info = clone(si, parent, "pkg-full", clone_spec(si, None))
    assert info.state == "success", info.error
    (disk,) = disks(info.result)
    assert disk.backing.parent is None
    assert info.result.summary.storage.committed == round(3.72 * GIB)
    assert datastore_free(si) == free_before - round(3.72 * GIB)


def test_other_disk_move_type_or_disk_locator_is_full_copy(si: Any) -> None:
    parent = find(si, vim.VirtualMachine, "Verification")
    snap = snapshot(parent)
    info = clone(
        si, parent, "ver-move", clone_spec(si, snap, move="moveAllDiskBackingsAndDisallowSharing")
    )
    assert info.state == "success"
    assert disks(info.result)[0].backing.parent is None

    spec = clone_spec(si, snap)
    pdisk = disks(parent)[0]
    ds = find(si, vim.Datastore, "TrainingDS")
    spec.location.disk = [vim.vm.RelocateSpec.DiskLocator(diskId=pdisk.key, datastore=ds)]
    info = clone(si, parent, "ver-locator", spec)
    assert info.state == "success"
    assert disks(info.result)[0].backing.parent is None
    assert info.result.summary.storage.committed == round(2.49 * GIB)


def test_clone_placed_on_requested_host(make_lab: Callable[..., LabProcess]) -> None:
    lab = make_lab(
        {"clusters": [{"name": "Training", "hosts": 8}, {"name": "Training-Large", "hosts": 12}]}
    )
    si = connect(lab)
    try:
        large = find(si, vim.ClusterComputeResource, "Training-Large")
        assert len(large.host) == 12
        parent = find(si, vim.VirtualMachine, "Capture")
        snap = snapshot(parent)
        target = large.host[5]
        info = clone(
            si, parent, "big-01", clone_spec(si, snap, cluster="Training-Large", host=target)
        )
        assert info.state == "success", info.error
        assert info.result.runtime.host == target
        assert info.result.resourcePool == large.resourcePool
        info = clone(si, parent, "big-02", clone_spec(si, snap, cluster="Training-Large"))
        assert info.result.runtime.host in large.host
    finally:
        Disconnect(si)


def test_injected_fault_on_second_clone(make_lab: Callable[..., LabProcess]) -> None:
    lab = make_lab({"faults": {"fail_nth": [2], "fault": "FileLocked"}})
    si = connect(lab)
    try:
        parent = find(si, vim.VirtualMachine, "Capture")
        snap = snapshot(parent)
        first = clone(si, parent, "f-1", clone_spec(si, snap))
        assert first.state == "success"
        second = clone(si, parent, "f-2", clone_spec(si, snap))
        assert second.state == "error"
        assert isinstance(second.error, vim.fault.FileLocked)
        assert find(si, vim.VirtualMachine, "f-2") is None
        third = clone(si, parent, "f-3", clone_spec(si, snap))
        assert third.state == "success"
        stats = lab.control.stats()
        assert stats["clone_calls"] == 3
        assert stats["clones_failed_injected"] == 1
        assert "f-2" not in {v["name"] for v in lab.control.vms()}
    finally:
        Disconnect(si)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("HostCommunication", vmodl.fault.HostCommunication),
        ("Timedout", vim.fault.Timedout),
        ("InsufficientDiskSpace", vim.fault.InsufficientStorageSpace),
        ("SystemError", vmodl.fault.SystemError),
        ("TaskInProgress", vim.fault.TaskInProgress),
    ],
)
def test_fault_configured_at_runtime(lab: LabProcess, si: Any, fault: str, expected: type) -> None:
    lab.control.configure(faults={"fail_nth": [1], "fault": fault})
    parent = find(si, vim.VirtualMachine, "Capture")
    info = clone(si, parent, "rt-1", clone_spec(si, None))
    assert info.state == "error"
    assert isinstance(info.error, expected)
    assert find(si, vim.VirtualMachine, "rt-1") is None
    # reset restarts the ordinal count: the next call is number 1 again and fails.
    lab.control.reset()
    assert clone(si, parent, "rt-2", clone_spec(si, None)).state == "error"
    lab.control.configure(faults={"fail_nth": []})
    assert clone(si, parent, "rt-3", clone_spec(si, None)).state == "success"


def test_fail_fraction_is_seeded(make_lab: Callable[..., LabProcess]) -> None:
    outcomes = []
    for _ in range(2):
        lab = make_lab({"faults": {"fail_fraction": 0.5, "seed": 7}})
        si = connect(lab)
        parent = find(si, vim.VirtualMachine, "Capture")
        run = [clone(si, parent, f"r-{i}", clone_spec(si, None)).state for i in range(8)]
        Disconnect(si)
        outcomes.append(run)
        lab.stop()
    assert outcomes[0] == outcomes[1]
    assert "error" in outcomes[0] and "success" in outcomes[0]


def test_duplicate_name_fails(si: Any) -> None:
    parent = find(si, vim.VirtualMachine, "Capture")
    snap = snapshot(parent)
    assert clone(si, parent, "dup", clone_spec(si, snap)).state == "success"
    info = clone(si, parent, "dup", clone_spec(si, snap))
    assert info.state == "error"
    assert isinstance(info.error, vim.fault.DuplicateName)
    assert [vm.name for vm in all_of(si, vim.VirtualMachine)].count("dup") == 1


def test_snapshot_of_another_vm_is_invalid(si: Any) -> None:
    capture = find(si, vim.VirtualMachine, "Capture")
    other = snapshot(find(si, vim.VirtualMachine, "Packaging"))
    info = clone(si, capture, "wrong-snap", clone_spec(si, other))
    assert info.state == "error"
    assert isinstance(info.error, vmodl.fault.InvalidArgument)
    assert find(si, vim.VirtualMachine, "wrong-snap") is None


def test_latency_is_served_concurrently(lab: LabProcess, si: Any) -> None:
    lab.control.configure(clone_latency_ms=300)
    parent = find(si, vim.VirtualMachine, "Capture")
    snap = snapshot(parent)
    folder = find(si, vim.Folder, "Training")
    spec = clone_spec(si, snap)
    states: list[str] = []

    def work(i: int) -> None:
        task = parent.CloneVM_Task(folder=folder, name=f"lat-{i}", spec=spec)
        states.append(wait(task).state)

    elapsed = at_once(work, 8)
    assert states == ["success"] * 8
    assert 0.3 <= elapsed < 2.0, elapsed  # in parallel: one after another would take 2.4 s
    lab.control.configure(clone_latency_ms=0)
    start = time.monotonic()
    clone(si, parent, "lat-fast", spec)
    assert time.monotonic() - start < 0.3


def test_stats_count_methods(lab: LabProcess, si: Any) -> None:
    lab.control.reset()
    assert lab.control.stats()["total"] == 0
    parent = find(si, vim.VirtualMachine, "Verification")
    clone(si, parent, "s-1", clone_spec(si, None))
    stats = lab.control.stats()
    assert stats["requests"]["CloneVM_Task"] == 1
    assert stats["clone_calls"] == 1
    assert stats["requests"]["Fetch"] > 0  # pyvmomi reads properties with Fetch
    assert stats["total"] == sum(stats["requests"].values())
    assert set(stats["busy_ms"]) == set(stats["requests"])  # server-side time, by method
    assert all(ms >= 0 for ms in stats["busy_ms"].values())
    # Reads of tasks' own state are counted apart from inventory reads.
    lab.control.reset()
    task = parent.CloneVM_Task(
        folder=find(si, vim.Folder, "Training"), name="s-2", spec=clone_spec(si, None)
    )
    pc = si.content.propertyCollector
    read = property_spec([task], vim.Task, "info.state")
    [found] = pc.RetrievePropertiesEx(
        [read], vmodl.query.PropertyCollector.RetrieveOptions()
    ).objects
    assert found.propSet[0].val == "success"  # the lab's tasks are over when the call returns
    pc.RetrievePropertiesEx(
        [property_spec([parent], vim.VirtualMachine, "name")],
        vmodl.query.PropertyCollector.RetrieveOptions(),
    )
    after = lab.control.stats()
    assert after["requests"]["RetrievePropertiesEx"] == 2 and after["task_reads"] == 1
    lab.control.reset()
    assert lab.control.stats() == {
        "requests": {},
        "busy_ms": {},
        "clone_lock_wait_ms": 0,
        "total": 0,
        "clone_calls": 0,
        "task_reads": 0,
        "clone_calls_in_flight_max": 0,
        "host_ops_in_flight_max": {},
        "host_ops_in_flight_max_any": 0,
        "requests_in_flight": 0,
        "clones_failed_injected": 0,
        "dropped": 0,
        "paused": False,
        "sessions": stats["sessions"],
        "reads_without_session": 0,
    }


def test_expire_sessions_gives_not_authenticated(lab: LabProcess, si: Any) -> None:
    vm = find(si, vim.VirtualMachine, "Capture")
    lab.control.expire_sessions()
    with pytest.raises(vim.fault.NotAuthenticated):
        _ = vm.name
    again = connect(lab)
    try:
        assert find(again, vim.VirtualMachine, "Capture") is not None
    finally:
        Disconnect(again)


def test_wrong_password_is_invalid_login(lab: LabProcess) -> None:
    with pytest.raises(vim.fault.InvalidLogin):
        connect(lab, password="not-the-password")


def test_custom_credentials(make_lab: Callable[..., LabProcess]) -> None:
    lab = make_lab({"user": "trainer", "password": "s3cret"})
    assert (lab.info.user, lab.info.password) == ("trainer", "s3cret")
    Disconnect(connect(lab))
    with pytest.raises(vim.fault.InvalidLogin):
        connect(lab, password="lab-password")


def test_decoy_vm_with_custom_attribute(lab: LabProcess, si: Any) -> None:
    entry = lab.control.add_vm(
        "decoy", folder="Training", parent_like="Capture", custom={"ManagedBy": "clones"}
    )
    assert entry["name"] == "decoy" and entry["custom"] == {"ManagedBy": "clones"}
    vm = find(si, vim.VirtualMachine, "decoy")
    fields = {f.key: f.name for f in si.RetrieveContent().customFieldsManager.field}
    assert {fields[v.key]: v.value for v in vm.customValue} == {"ManagedBy": "clones"}
    assert vm.parent.name == "Training"
    assert vm.summary.storage.committed == round(3.34 * GIB)
    with pytest.raises(LabError, match="already exists"):
        lab.control.add_vm("decoy", folder="Training")


# ------------------------------------------------------------------------------------------------
# specs and process management


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.json"
    path.write_text(text, encoding="utf-8")
    return path


def _default() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DEFAULT_SPEC.read_text(encoding="utf-8"))
    return data


def _bad_specs() -> list[tuple[str, str]]:
    no_parents = _default()
    del no_parents["parents"]
    negative = _default()
    negative["parents"][0]["disk_gb"] = -1
    bad_fault = _default()
    bad_fault["faults"]["fault"] = "NoSuchFault"
    bad_cluster = _default()
    bad_cluster["parents"][1]["cluster"] = "Nowhere"
    bad_ds = _default()
    bad_ds["parents"][2]["datastore"] = "NoDS"
    bad_folder = _default()
    bad_folder["parents"][0]["folder"] = "Attic"
    bad_kind = _default()
    bad_kind["customization_specs"] = [{"name": "w", "kind": "windows-xp"}]
    return [
        ("{not json", "JSON"),
        (json.dumps(no_parents), "parents"),
        (json.dumps(negative), "disk_gb"),
        (json.dumps(bad_fault), "NoSuchFault"),
        (json.dumps(bad_cluster), "Nowhere"),
        (json.dumps(bad_ds), "NoDS"),
        (json.dumps(bad_folder), "Attic"),
        (json.dumps(bad_kind), "windows-xp"),
    ]


@pytest.mark.parametrize(("text", "mentions"), _bad_specs())
def test_malformed_spec_exits_with_clear_error(
    lab_binary: Path, tmp_path: Path, text: str, mentions: str
) -> None:
    spec = _write(tmp_path, text)
    result = subprocess.run(
        [str(lab_binary), "--spec", str(spec), "--listen", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and mentions in lines[0], result.stderr
    with pytest.raises(LabError, match=mentions):
        validate_spec(spec)


def test_default_spec_is_valid(lab_binary: Path) -> None:
    spec = validate_spec(DEFAULT_SPEC)
    assert [p["name"] for p in spec["parents"]] == ["Capture", "Packaging", "Verification"]
    # As the lab runs it: defaults filled in.
    assert spec["parents"][0]["thin"] is True and spec["parents"][0]["num_cpus"] == 1
    assert spec["privileges"] is None and spec["customization_specs"] == []


def test_the_binary_is_the_spec_validator(lab_binary: Path, tmp_path: Path) -> None:
    """`clones-lab --check` reports every problem, one line each; LabError says them all."""
    spec = _default()
    spec["parents"][0]["disk_gb"] = -1
    spec["parents"][1]["cluster"] = "Nowhere"
    spec["faults"]["fault"] = "NoSuchFault"
    path = _write(tmp_path, json.dumps(spec))
    result = subprocess.run(
        [str(lab_binary), "--check", "--spec", str(path)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3, result.stderr
    assert all(line.startswith(f"clones-lab: invalid spec {path}: ") for line in lines)
    with pytest.raises(LabError) as caught:
        validate_spec(path)
    message = str(caught.value)
    assert message.startswith(f"Invalid lab spec {path}:\n")
    for mention in ("disk_gb must be positive", '"Nowhere"', '"NoSuchFault"'):
        assert mention in message
    # LabProcess checks a spec before starting anything.
    with pytest.raises(LabError, match=r"^Invalid lab spec:"):
        LabProcess.start(spec)


def test_runtime_config_is_checked_by_the_lab(lab: LabProcess) -> None:
    before = lab.control.config()
    with pytest.raises(LabError, match=r'faults\.fault: unknown fault "Gremlins"'):
        lab.control.configure(clone_latency_ms=5, faults={"fault": "Gremlins"})
    with pytest.raises(LabError, match=r'privileges\[0\]: "Read" is not a privilege id'):
        lab.control.configure(privileges=["Read"])
    assert lab.control.config() == before


def test_ensure_built_is_cached(lab_binary: Path) -> None:
    start = time.monotonic()
    assert ensure_built() == lab_binary
    assert time.monotonic() - start < 2


def test_lab_up_and_down(lab_binary: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    state = tmp_path / ".lab"
    assert running_lab(state) is None
    info = lab_up(port=port, state_dir=state)
    try:
        assert info.port == port and info.url == f"http://127.0.0.1:{port}/sdk"
        assert json.loads((state / "lab.json").read_text())["pid"] == info.pid
        assert lab_up(port=port, state_dir=state) == info  # already running: same lab
        assert lab_up(state_dir=state) == info  # no port asked for: whichever it runs on
        assert running_lab(state) == info
        # Another spec or port is never silently ignored: an error says so, or --restart.
        same_spec = tmp_path / "same.json"  # another file, the same contents: the same lab
        same_spec.write_text(DEFAULT_SPEC.read_text())
        assert lab_up(spec=same_spec, port=port, state_dir=state) == info
        other = json.loads(DEFAULT_SPEC.read_text())
        other["clone_latency_ms"] = 5
        other_spec = tmp_path / "spec.json"
        other_spec.write_text(json.dumps(other))
        with pytest.raises(LabError, match=r"already running .*spec .*lab down.*--restart"):
            lab_up(spec=other_spec, port=port, state_dir=state)
        with pytest.raises(LabError, match=rf"port {port}, not {port + 1}"):
            lab_up(port=port + 1, state_dir=state)
        assert running_lab(state) == info
        replaced = lab_up(spec=other_spec, port=port, state_dir=state, restart=True)
        assert replaced.spec == str(other_spec.resolve()) and replaced.pid != info.pid
    finally:
        assert lab_down(state) is True
    assert running_lab(state) is None
    assert not (state / "lab.json").exists()
    assert lab_down(state) is False


# ------------------------------------------------------------------------------------------------
# guest customization, disk modes, power, DRS groups and rules

# The start, then each outcome the bot's adapter waits for.
CUSTOMIZATION_EVENTS = ["CustomizationStartedEvent", *OUTCOMES]
CUSTOMIZATION_SPECS = {
    "customization_specs": [
        {"name": "win-training", "kind": "sysprep", "description": "Windows training VMs"},
        {"name": "linux-training", "kind": "linux"},
    ]
}


def customization_events(si: Any, vm: Any) -> list[Any]:
    """Customization events of `vm`, oldest first."""
    content = si.RetrieveContent()
    spec = vim.event.EventFilterSpec(
        entity=vim.event.EventFilterSpec.ByEntity(entity=vm, recursion="self"),
        eventTypeId=CUSTOMIZATION_EVENTS,
    )
    return sorted(content.eventManager.QueryEvents(spec), key=lambda e: e.key)


def win_spec(si: Any) -> Any:
    csm = si.RetrieveContent().customizationSpecManager
    return csm.GetCustomizationSpec(name="win-training").spec


def custom_clone(si: Any, parent: Any, snap: Any, name: str, customization: Any) -> Any:
    spec = clone_spec(si, snap)
    spec.customization = customization
    return clone(si, parent, name, spec)


def test_customization_specs_listed_and_fetched(make_lab: Callable[..., LabProcess]) -> None:
    lab = make_lab(CUSTOMIZATION_SPECS)
    si = connect(lab)
    try:
        csm = si.RetrieveContent().customizationSpecManager
        # Only the spec's entries: the simulator's vcsim-* samples are dropped.
        assert [(i.name, i.type) for i in csm.info] == [
            ("win-training", "Windows"),
            ("linux-training", "Linux"),
        ]
        assert csm.DoesCustomizationSpecExist(name="win-training") is True
        item = csm.GetCustomizationSpec(name="win-training")
        assert item.info.description == "Windows training VMs"
        identity = item.spec.identity
        assert isinstance(identity, vim.vm.customization.Sysprep)
        assert isinstance(
            identity.userData.computerName, vim.vm.customization.VirtualMachineNameGenerator
        )
        nics = [
            d
            for d in find(si, vim.VirtualMachine, "Capture").config.hardware.device
            if isinstance(d, vim.vm.device.VirtualEthernetCard)
        ]
        assert len(item.spec.nicSettingMap) == len(nics) == 1
        linux = csm.GetCustomizationSpec(name="linux-training").spec.identity
        assert isinstance(linux, vim.vm.customization.LinuxPrep)
        with pytest.raises(vim.fault.NotFound):
            csm.GetCustomizationSpec(name="vcsim-linux")
    finally:
        Disconnect(si)


def test_clone_with_customization_then_power_on(make_lab: Callable[..., LabProcess]) -> None:
    lab = make_lab(CUSTOMIZATION_SPECS)
    si = connect(lab)
    try:
        parent = find(si, vim.VirtualMachine, "Capture")
        snap = snapshot(parent)
        info = custom_clone(si, parent, snap, "cap-cust-01", win_spec(si))
        assert info.state == "success", info.error
        vm = info.result
        assert vm.config.tools.pendingCustomization  # pending until the first power-on
        (entry,) = [v for v in lab.control.vms() if v["name"] == "cap-cust-01"]
        assert entry["customization"] == "pending" and entry["linked"] is True
        assert customization_events(si, vm) == []

        assert wait(vm.PowerOnVM_Task()).state == "success"
        events = customization_events(si, vm)
        assert [type(e) for e in events] == [
            vim.event.CustomizationStartedEvent,
            vim.event.CustomizationSucceeded,
        ]
        assert all(e.vm.vm == vm and e.vm.name == "cap-cust-01" for e in events)
        assert vm.guest.hostName == "cap-cust-01"
        assert not vm.config.tools.pendingCustomization
        (entry,) = [v for v in lab.control.vms() if v["name"] == "cap-cust-01"]
        assert entry["customization"] == "succeeded"
        assert entry["guest_hostname"] == "cap-cust-01"
        assert entry["power_state"] == "poweredOn"
        # A collector with the same filter finds them too.
        content = si.RetrieveContent()
        collector = content.eventManager.CreateCollectorForEvents(
            vim.event.EventFilterSpec(
                entity=vim.event.EventFilterSpec.ByEntity(entity=vm, recursion="self"),
                eventTypeId=["CustomizationSucceeded", "CustomizationFailed"],
            )
        )
        try:
            assert [type(e) for e in collector.latestPage] == [vim.event.CustomizationSucceeded]
        finally:
            collector.DestroyCollector()
        # A second power cycle does not customize again.
        assert wait(vm.PowerOffVM_Task()).state == "success"
        assert wait(vm.PowerOnVM_Task()).state == "success"
        assert len(customization_events(si, vm)) == 2
    finally:
        Disconnect(si)


def test_customization_latency_is_asynchronous(make_lab: Callable[..., LabProcess]) -> None:
    lab = make_lab({**CUSTOMIZATION_SPECS, "customization_latency_ms": 300})
    assert lab.control.config()["customization_latency_ms"] == 300
    si = connect(lab)
    try:
        parent = find(si, vim.VirtualMachine, "Packaging")
        vm = custom_clone(si, parent, snapshot(parent), "pkg-slow", win_spec(si)).result
        assert wait(vm.PowerOnVM_Task()).state == "success"
        assert [type(e) for e in customization_events(si, vm)] == [
            vim.event.CustomizationStartedEvent
        ]
        assert vm.guest.hostName != "pkg-slow"
        deadline = time.monotonic() + 5
        while len(customization_events(si, vm)) < 2:
            assert time.monotonic() < deadline, "no customization outcome"
            time.sleep(0.05)
        assert isinstance(customization_events(si, vm)[-1], vim.event.CustomizationSucceeded)
        assert vm.guest.hostName == "pkg-slow"
    finally:
        Disconnect(si)


def test_injected_customization_failure(make_lab: Callable[..., LabProcess]) -> None:
    lab = make_lab({**CUSTOMIZATION_SPECS, "faults": {"customization_fail_names": ["cap-bad"]}})
    si = connect(lab)
    try:
        parent = find(si, vim.VirtualMachine, "Capture")
        snap = snapshot(parent)
        bad = custom_clone(si, parent, snap, "cap-bad", win_spec(si)).result
        good = custom_clone(si, parent, snap, "cap-good", win_spec(si)).result
        assert wait(bad.PowerOnVM_Task()).state == "success"  # power-on itself succeeds
        assert wait(good.PowerOnVM_Task()).state == "success"
        *_, outcome = customization_events(si, bad)
        assert isinstance(outcome, vim.event.CustomizationSysprepFailed)
        assert isinstance(outcome, vim.event.CustomizationFailed)
        assert outcome.reason
        assert bad.guest.hostName != "cap-bad"
        assert isinstance(customization_events(si, good)[-1], vim.event.CustomizationSucceeded)
        states = {v["name"]: v["customization"] for v in lab.control.vms()}
        assert states["cap-bad"] == "failed" and states["cap-good"] == "succeeded"
        assert states["Capture"] == ""

        # By ordinal, set at runtime: the 1st customization after a reset fails.
        lab.control.configure(
            faults={"customization_fail_names": [], "customization_fail_nth": [1]}
        )
        lab.control.reset()
        third = custom_clone(si, parent, snap, "cap-third", win_spec(si)).result
        assert wait(third.PowerOnVM_Task()).state == "success"
        assert isinstance(customization_events(si, third)[-1], vim.event.CustomizationFailed)
    finally:
        Disconnect(si)


def test_long_fixed_computer_name_fails_the_clone(make_lab: Callable[..., LabProcess]) -> None:
    lab = make_lab(CUSTOMIZATION_SPECS)
    si = connect(lab)
    try:
        parent = find(si, vim.VirtualMachine, "Capture")
        snap = snapshot(parent)
        spec = win_spec(si)
        spec.identity.userData.computerName = vim.vm.customization.FixedName(name="a" * 16)
        info = custom_clone(si, parent, snap, "cap-long", spec)
        assert info.state == "error"
        assert isinstance(info.error, vmodl.fault.InvalidArgument)
        assert info.error.invalidProperty == "spec.identity.userData.computerName"
        assert find(si, vim.VirtualMachine, "cap-long") is None
        # 15 characters is fine; a NIC mapping count that does not match is not.
        spec.identity.userData.computerName = vim.vm.customization.FixedName(name="a" * 15)
        assert custom_clone(si, parent, snap, "cap-15", spec).state == "success"
        spec.nicSettingMap = spec.nicSettingMap * 2
        info = custom_clone(si, parent, snap, "cap-nics", spec)
        assert info.state == "error" and isinstance(info.error, vim.fault.NicSettingMismatch)
    finally:
        Disconnect(si)


def test_disk_mode_reconfigure_keeps_parent_backing(si: Any, lab: LabProcess) -> None:
    parent = find(si, vim.VirtualMachine, "Capture")
    vm = clone(si, parent, "cap-nonp", clone_spec(si, snapshot(parent))).result
    (disk,) = disks(vm)
    parent_file = disk.backing.parent.fileName
    committed = vm.summary.storage.committed
    disk.backing.diskMode = "independent_nonpersistent"
    change = vim.vm.device.VirtualDeviceSpec(operation="edit", device=disk)
    info = wait(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=[change])))
    assert info.state == "success", info.error
    (disk,) = disks(vm)
    assert disk.backing.diskMode == "independent_nonpersistent"
    assert disk.backing.parent is not None and disk.backing.parent.fileName == parent_file
    assert vm.summary.storage.committed == committed
    (entry,) = [v for v in lab.control.vms() if v["name"] == "cap-nonp"]
    assert entry["disk_modes"] == ["independent_nonpersistent"] and entry["linked"] is True


def test_power_operations_and_swap(si: Any, lab: LabProcess) -> None:
    parent = find(si, vim.VirtualMachine, "Verification")
    vm = clone(si, parent, "ver-power", clone_spec(si, snapshot(parent))).result
    committed = vm.summary.storage.committed
    free = datastore_free(si)
    assert wait(vm.PowerOnVM_Task()).state == "success"
    assert vm.runtime.powerState == "poweredOn"
    assert vm.summary.storage.committed == committed
    assert datastore_free(si) == free - 1024 * 2**20  # the .vswp file (memory_mb)
    assert wait(vm.ResetVM_Task()).state == "success"
    assert vm.runtime.powerState == "poweredOn"
    (entry,) = [v for v in lab.control.vms() if v["name"] == "ver-power"]
    assert entry["power_state"] == "poweredOn" and entry["memory_mb"] == 1024
    assert wait(vm.PowerOffVM_Task()).state == "success"
    assert datastore_free(si) == free
    (entry,) = [v for v in lab.control.vms() if v["name"] == "ver-power"]
    assert entry["power_state"] == "poweredOff"


def test_drs_groups_and_rules_round_trip(si: Any) -> None:
    cluster = find(si, vim.ClusterComputeResource, "Training")
    parent = find(si, vim.VirtualMachine, "Capture")
    snap = snapshot(parent)
    vms = [clone(si, parent, f"drs-{i}", clone_spec(si, snap)).result for i in range(2)]
    hosts = list(cluster.host[:4])
    spec = vim.cluster.ConfigSpecEx(
        groupSpec=[
            vim.cluster.GroupSpec(
                operation="add", info=vim.cluster.VmGroup(name="capture-vms", vm=vms)
            ),
            vim.cluster.GroupSpec(
                operation="add", info=vim.cluster.HostGroup(name="capture-hosts", host=hosts)
            ),
        ],
        rulesSpec=[
            vim.cluster.RuleSpec(
                operation="add",
                info=vim.cluster.VmHostRuleInfo(
                    name="capture-on-hosts",
                    enabled=True,
                    mandatory=True,
                    vmGroupName="capture-vms",
                    affineHostGroupName="capture-hosts",
                ),
            )
        ],
    )
    info = wait(cluster.ReconfigureComputeResource_Task(spec=spec, modify=True))
    assert info.state == "success", info.error

    config = cluster.configurationEx
    groups = {g.name: g for g in config.group}
    assert isinstance(groups["capture-vms"], vim.cluster.VmGroup)
    assert list(groups["capture-vms"].vm) == vms
    assert isinstance(groups["capture-hosts"], vim.cluster.HostGroup)
    assert list(groups["capture-hosts"].host) == hosts
    (rule,) = config.rule
    assert isinstance(rule, vim.cluster.VmHostRuleInfo)
    assert (rule.name, rule.mandatory, rule.vmGroupName, rule.affineHostGroupName) == (
        "capture-on-hosts",
        True,
        "capture-vms",
        "capture-hosts",
    )
    # The same through RetrievePropertiesEx (what a PropertyCollector-based adapter uses).
    pc = si.RetrieveContent().propertyCollector
    filter_spec = property_spec([cluster], vim.ClusterComputeResource, "configurationEx")
    result = pc.RetrievePropertiesEx(
        specSet=[filter_spec], options=vmodl.query.PropertyCollector.RetrieveOptions()
    )
    (prop,) = result.objects[0].propSet
    assert {g.name for g in prop.val.group} == {"capture-vms", "capture-hosts"}
    assert [r.name for r in prop.val.rule] == ["capture-on-hosts"]

    # Adding a VM (edit), then a destroyed VM leaves the group, as on vCenter.
    third = clone(si, parent, "drs-2", clone_spec(si, snap)).result
    edit = vim.cluster.GroupSpec(
        operation="edit", info=vim.cluster.VmGroup(name="capture-vms", vm=[*vms, third])
    )
    assert (
        wait(
            cluster.ReconfigureComputeResource_Task(
                spec=vim.cluster.ConfigSpecEx(groupSpec=[edit]), modify=True
            )
        ).state
        == "success"
    )
    assert wait(vms[0].Destroy_Task()).state == "success"
    groups = {g.name: g for g in cluster.configurationEx.group}
    assert [v.name for v in groups["capture-vms"].vm] == ["drs-1", "drs-2"]

    # Remove: rules by key, groups by name.
    remove = vim.cluster.ConfigSpecEx(
        rulesSpec=[vim.cluster.RuleSpec(operation="remove", removeKey=rule.key)],
        groupSpec=[
            vim.cluster.GroupSpec(operation="remove", removeKey="capture-vms"),
            vim.cluster.GroupSpec(operation="remove", removeKey="capture-hosts"),
        ],
    )
    info = wait(cluster.ReconfigureComputeResource_Task(spec=remove, modify=True))
    assert info.state == "success", info.error
    assert not cluster.configurationEx.rule and not cluster.configurationEx.group


def test_customization_spec_validation(lab_binary: Path, tmp_path: Path) -> None:
    spec = _default()
    spec["customization_specs"] = [{"name": "x", "kind": "windows"}]
    with pytest.raises(LabError, match="kind"):
        validate_spec(_write(tmp_path, json.dumps(spec)))
    spec["customization_specs"] = [{"name": "x", "kind": "sysprep", "colour": "red"}]
    with pytest.raises(LabError, match="colour"):
        validate_spec(_write(tmp_path, json.dumps(spec)))
    spec["customization_specs"] = [{"name": "x", "kind": "linux"}]
    spec["faults"]["customization_fail_nth"] = [0]
    with pytest.raises(LabError, match="customization_fail_nth"):
        validate_spec(_write(tmp_path, json.dumps(spec)))
    spec["faults"]["customization_fail_nth"] = [1]
    assert (
        validate_spec(_write(tmp_path, json.dumps(spec)))["customization_specs"][0]["kind"]
        == "linux"
    )
