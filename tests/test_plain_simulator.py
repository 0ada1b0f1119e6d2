"""The adapter against VMware's simulator as VMware ships it (`clones-lab --plain`: vcsim's
default inventory over HTTPS, none of the lab's fixes), with certificates the tests make.

This is the proof that the bot works against a VMware implementation we did not patch: login,
TLS verification with ca_file and with a pinned thumbprint, each TLS failure with its real
reason, `clones check`, `clones thumbprint`, and a deployment that meets the simulator's full
copies (it ignores diskMoveType) and stops at the first one.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import ssl
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyVim.connect import Disconnect, SmartConnect, SmartStubAdapter
from pyVmomi import vim

from bot.adapters.lab import LabProcess
from bot.adapters.vcenter import VCenter
from bot.domain.errors import VCenterError, VCenterUnreachable
from bot.domain.models import CloneState
from bot.settings import VCenterSettings
from tests.certs import Certs, ServerCert, make_certs
from tests.helpers import PASSWORD_ENV, lab_config, write_config
from tests.terminal import Terminal, assert_clean_failure
from tests.vsphere import property_spec

pytestmark = pytest.mark.lab

PARENT = "DC0_C0_RP0_VM0"  # a VM of vcsim's default inventory, in cluster DC0_C0
PLAIN_TYPES = {
    "vm": {
        "parent": PARENT,
        "name_pattern": "TRN-VM-{n:03}",
        "folder": "Training",  # vcsim has no such folder until a test makes it
        "resource_pool": "DC0_C0",
        "datastore": "LocalDS_0",
        "max_count": 10,
    }
}


# ------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def start(cert: ServerCert) -> LabProcess:
    return LabProcess.start_plain(cert.cert, cert.key)


@pytest.fixture(scope="module")
def plain(certs: Certs, lab_binary: Path) -> Iterator[LabProcess]:
    """The simulator with a good certificate (for localhost and 127.0.0.1); tests that use it
    change nothing in it."""
    with start(certs.good) as server:
        yield server


@pytest.fixture
def fresh_plain(certs: Certs, lab_binary: Path) -> Iterator[LabProcess]:
    with start(certs.good) as server:
        yield server


def fingerprint_of(cert: ServerCert) -> str:
    """The certificate's SHA-256 fingerprint, computed here without the bot's code."""
    der = x509.load_pem_x509_certificate(cert.cert.read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
    return "SHA256:" + ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def configure(
    term: Terminal,
    server: LabProcess,
    *,
    ca: Path | None = None,
    thumbprint: str | None = None,
    password: str | None = None,
) -> None:
    """A clones.toml for the plain simulator; a CA file goes beside it as a relative ca_file
    (read from the configuration file's folder, whatever the working directory)."""
    raw = lab_config(
        None,
        term.database,
        url=server.info.url,
        types=PLAIN_TYPES,
        capacity_headroom_gb=0,
    )
    vc = raw["vcenter"]
    del vc["insecure"]
    vc["user"] = server.info.user
    if ca is not None:
        (term.tmp_path / "certs").mkdir(exist_ok=True)
        shutil.copy(ca, term.tmp_path / "certs" / ca.name)
        vc["ca_file"] = f"certs/{ca.name}"
    if thumbprint is not None:
        vc["thumbprint"] = thumbprint
    write_config(term.config, raw)
    term.env = {
        "CLONES_CONFIG": str(term.config),
        "CLONES_USER": "trainer",
        PASSWORD_ENV: password or server.info.password,
    }
    for name, value in term.env.items():
        term.monkeypatch.setenv(name, value)
    elsewhere = term.tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    term.monkeypatch.chdir(elsewhere)


def connect(server: LabProcess, certs: Certs) -> Any:
    """pyVmomi itself, as a vSphere admin's script would, to look at or set up the simulator."""
    context = ssl.create_default_context(cafile=str(certs.ca))
    return SmartConnect(
        host=server.info.host,
        port=server.info.port,
        user=server.info.user,
        pwd=server.info.password,
        sslContext=context,
    )


def vm_names(si: Any) -> set[str]:
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    try:
        return {vm.name for vm in view.view}
    finally:
        view.Destroy()


def find_vm(si: Any, name: str) -> Any:
    content = si.RetrieveContent()
    return content.searchIndex.FindByInventoryPath(f"DC0/vm/{name}")


def snapshot_names(si: Any, vm: Any) -> list[str]:
    """Through the property collector: vcsim's accessor for one property (Fetch) fails on an
    unset one such as the snapshot of a VM without snapshots."""
    collector = si.RetrieveContent().propertyCollector
    spec = property_spec([vm], vim.VirtualMachine, "snapshot")
    names: list[str] = []
    for found in collector.RetrieveContents([spec]) or []:
        for prop in found.propSet or []:
            names += [tree.name for tree in prop.val.rootSnapshotList]
    return names


def settings(server: LabProcess, **trust: Any) -> VCenterSettings:
    return VCenterSettings(
        url=server.info.url, user=server.info.user, password=server.info.password, **trust
    )


# ------------------------------------------------------------------------------------------------
# login and TLS


def test_login_goes_straight_to_login(plain: LabProcess, certs: Certs) -> None:
    # The simulator refuses to say who is logged in before a login (pyVmomi's own login
    # helper asks that first); the adapter calls SessionManager.Login directly.
    context = ssl.create_default_context(cafile=str(certs.ca))
    stub = SmartStubAdapter(host=plain.info.host, port=plain.info.port, sslContext=context)
    content = vim.ServiceInstance("ServiceInstance", stub).RetrieveContent()
    sessions = content.sessionManager
    assert sessions is not None
    with pytest.raises(vim.fault.NotAuthenticated):
        sessions.currentSession  # noqa: B018

    with VCenter(settings(plain, ca_file=str(certs.ca))) as vc:
        endpoint = vc.endpoint()
        report = vc.parent_report(PARENT, "clones-base")
    assert endpoint.product.startswith("VMware vCenter Server")
    assert endpoint.user == plain.info.user
    assert endpoint.trust == f"verified against ca_file {certs.ca}"
    assert report.powered_on and report.snapshots_named == 0


def test_a_wrong_password_is_a_refused_login(plain: LabProcess, certs: Certs) -> None:
    vc = VCenter(
        VCenterSettings(
            url=plain.info.url, user=plain.info.user, password="wrong", ca_file=str(certs.ca)
        )
    )
    with pytest.raises(VCenterError, match="refused the login for user 'clones'") as info:
        vc.connect()
    assert "NotAuthenticated" not in str(info.value)


def test_a_pinned_thumbprint_trusts_that_certificate_only(plain: LabProcess, certs: Certs) -> None:
    pin = fingerprint_of(certs.good)
    with VCenter(settings(plain, thumbprint=pin)) as vc:  # no CA: the pin is the trust
        assert vc.endpoint().trust == f"pinned certificate {pin}"
        assert vc.datacenter_name() == "DC0"

    other = fingerprint_of(certs.weak)
    with pytest.raises(VCenterUnreachable) as info:
        VCenter(settings(plain, thumbprint=other)).connect()
    message = str(info.value)
    assert f"fingerprint is {pin}, not the pinned {other}" in message
    assert "clones thumbprint" in message


def test_a_session_that_expires_logs_in_again(plain: LabProcess, certs: Certs) -> None:
    # The simulator ends a session on Logout; the next call logs in again by itself.
    with VCenter(settings(plain, ca_file=str(certs.ca))) as vc:
        vc.datacenter_name()
        stub = vc.root_entity().obj._stub  # the adapter's own session
        sessions = vim.ServiceInstance("ServiceInstance", stub).RetrieveContent().sessionManager
        assert sessions is not None
        sessions.Logout()
        assert vc.find_vms().seen  # NotAuthenticated, a new Login, and the call again


def test_reads_the_simulator_answers_without_a_session_log_in_and_read_again(
    plain: LabProcess, certs: Certs
) -> None:
    # A session ended by vCenter (here an admin's TerminateSession): VMware's simulator still
    # answers RetrievePropertiesEx, HTTP 200, every property of every VM in missingSet with
    # NotAuthenticated. That is unseen, never gone: the adapter logs in and reads again.
    admin = connect(plain, certs)
    try:
        with VCenter(settings(plain, ca_file=str(certs.ca))) as vc:
            morefs = sorted(vc.find_vms().seen)
            assert len(morefs) >= 4
            stub = vc.root_entity().obj._stub  # the adapter's own session

            def end_the_adapters_session() -> None:
                manager = vim.ServiceInstance("ServiceInstance", stub).RetrieveContent()
                sessions = manager.sessionManager
                assert sessions is not None and sessions.currentSession is not None
                key = sessions.currentSession.key
                admin.content.sessionManager.TerminateSession([key])

            for read in (vc.sightings, vc.vm_facts, vc.instance_uuids):
                end_the_adapters_session()
                reading = read(morefs)
                assert sorted(reading.seen) == morefs, read
                assert not reading.unseen, read
    finally:
        Disconnect(admin)


@pytest.mark.parametrize(
    ("server_cert", "trust", "reason"),
    [
        ("name_only", "ca", "IP address mismatch, certificate is not valid for '127.0.0.1'"),
        ("good", "other_ca", "unable to get local issuer certificate"),
        ("weak", "ca", "EE certificate key too weak"),
        ("good", "pin_other", "not the pinned"),
    ],
)
def test_each_tls_failure_is_one_line_with_its_reason(
    certs: Certs, lab_binary: Path, term: Terminal, server_cert: str, trust: str, reason: str
) -> None:
    with start(getattr(certs, server_cert)) as server:
        if trust == "pin_other":
            configure(term, server, thumbprint=fingerprint_of(certs.weak))
        else:
            configure(term, server, ca=getattr(certs, trust))

        types = term("types")  # no "vCenter unreachable" per type with exit 0
        assert_clean_failure(types, "TLS to vCenter at 127.0.0.1:", reason)
        assert types.out == ""
        assert types.code == 1

        check = term("check")
        assert check.code == 1 and check.err == ""
        first, *rest = check.out.strip().splitlines()
        assert first.startswith("PROBLEM  connection: TLS to vCenter at 127.0.0.1:")
        assert reason in first
        assert rest == ["1 problem(s) found: fix them, then run `clones check` again."]


@pytest.mark.parametrize(
    ("ca_file", "words"),
    [
        ("ca.der", "is a DER (binary) certificate, not PEM; convert it with `openssl x509"),
        ("notes.txt", "is not a PEM certificate file"),
    ],
)
def test_a_ca_file_that_is_not_pem_is_reported_as_such(
    plain: LabProcess, certs: Certs, term: Terminal, ca_file: str, words: str
) -> None:
    source = certs.ca_der
    if ca_file == "notes.txt":
        source = term.tmp_path / "notes.txt"
        source.write_text("vCenter CA: ask the VMware team\n", encoding="utf-8")
    configure(term, plain, ca=source)
    result = term("types")
    assert_clean_failure(result, f"ca_file {term.tmp_path / 'certs' / source.name}", words)


def test_thumbprint_prints_the_fingerprint_to_pin(
    plain: LabProcess, certs: Certs, term: Terminal
) -> None:
    pin = fingerprint_of(certs.good)
    shown = term("thumbprint", f"127.0.0.1:{plain.info.port}")
    assert shown.code == 0, shown.err
    assert f"SHA-256   {pin}" in shown.out
    assert f'thumbprint = "{pin}"' in shown.out
    assert "names     localhost, 127.0.0.1" in shown.out

    # With the configuration: does it trust the certificate, and if not, why.
    configure(term, plain, ca=certs.other_ca)
    untrusted = term("thumbprint")
    assert "NOT trusted" in untrusted.out and "unable to get local issuer" in untrusted.out
    as_json = term("--json", "thumbprint").json
    assert as_json["sha256"] == pin and as_json["trusted"] is False

    # The printed line pins it: the same configuration, pinned, works.
    configure(term, plain, thumbprint=pin)
    assert term("thumbprint").out.count("trusted by clones.toml") == 1
    types = term("types")
    assert types.code == 0 and types.out.startswith("vm"), types.err


def test_thumbprint_with_insecure_gives_the_pin_that_replaces_it(
    plain: LabProcess, certs: Certs, term: Terminal
) -> None:
    """With insecure = true the pin line said nothing of insecure (a configuration with both is
    refused) and --json had no pin at all; now both give the line and say what it replaces."""
    pin = fingerprint_of(certs.good)
    configure(term, plain)
    raw = tomllib.loads(term.config.read_text(encoding="utf-8"))
    raw["vcenter"]["insecure"] = True
    write_config(term.config, raw)
    shown = term("thumbprint")
    assert shown.code == 0, shown.err
    lines = shown.out.splitlines()
    assert "NOT trusted: insecure = true: nothing is verified." in shown.out
    assert lines[-3].endswith("then pin it under [vcenter], in place of insecure = true:")
    assert lines[-2:] == [f'  thumbprint = "{pin}"', "  # and remove: insecure = true"]
    as_json = term("--json", "thumbprint").json
    assert (as_json["pin"], as_json["remove"]) == (f'thumbprint = "{pin}"', "insecure = true")

    # Doing what it says: the pin in place of insecure, and vCenter is trusted by it.
    del raw["vcenter"]["insecure"]
    raw["vcenter"]["thumbprint"] = pin
    write_config(term.config, raw)
    assert "trusted by clones.toml" in term("thumbprint").out
    assert term("--json", "thumbprint").json["remove"] is None
    types = term("types")
    assert types.code == 0, types.err


def test_the_ca_hint_names_vcenters_port(plain: LabProcess, certs: Certs, term: Terminal) -> None:
    """The VMCA root is served where the SDK is: the hint gave https://HOST/certs/download.zip
    without the port, which points at another service (or nothing) when vCenter is not on 443."""
    configure(term, plain, ca=certs.other_ca)
    result = term("types")
    port = plain.info.port
    assert_clean_failure(result, f"the VMCA root from https://127.0.0.1:{port}/certs/download.zip)")


# ------------------------------------------------------------------------------------------------
# check, plan and deploy


def test_check_reports_the_missing_folder_and_changes_nothing(
    plain: LabProcess, certs: Certs, term: Terminal
) -> None:
    si = connect(plain, certs)
    try:
        before = vm_names(si)
        configure(term, plain, ca=certs.ca)
        result = term("check")
        after = vm_names(si)
    finally:
        Disconnect(si)
    assert result.code == 1 and result.err == ""
    lines = result.out.strip().splitlines()
    assert lines[0].startswith("ok       connection: VMware vCenter Server")
    assert f"verified against ca_file {term.tmp_path / 'certs' / 'ca.pem'}" in lines[0]
    assert (
        'PROBLEM  vm folder: VM folder "Training" not found in datacenter DC0. Fix: Create the '
        "VM folder (VMs and Templates view, New Folder) or fix [types.vm] folder." in lines
    )
    snapshot = next(line for line in lines if line.startswith("PROBLEM  vm snapshot:"))
    assert "powered on and has no base snapshot" in snapshot and "Fix: " in snapshot
    assert 'ok       vm pool: Resource pool "DC0_C0" found.' in lines
    assert any(line.startswith("ok       vm network: Parent") for line in lines)
    assert lines[-1] == "2 problem(s) found: fix them, then run `clones check` again."
    assert after == before


def test_plan_never_shows_negative_savings(plain: LabProcess, certs: Certs, term: Terminal) -> None:
    # vcsim's VMs have 1 MB disks: the estimated linked clones (1 GB each) are larger.
    configure(term, plain, ca=certs.ca)
    result = term("plan", "vm", "5")
    assert result.code == 0, result.err
    assert "none (linked uses 5.00 more)" in result.out
    assert not re.search(r"-\d", result.out), result.out


def test_deploy_checks_first_then_stops_at_the_first_full_copy(
    fresh_plain: LabProcess, certs: Certs, term: Terminal
) -> None:
    server = fresh_plain
    configure(term, server, ca=certs.ca)
    si = connect(server, certs)
    try:
        parent = find_vm(si, PARENT)
        parent.PowerOffVM_Task()
        before = vm_names(si)

        # The missing folder is found before anything changes (not once per clone).
        refused = term("deploy", "vm", "3", "as", "probe")
        assert_clean_failure(refused, 'VM folder "Training" not found in datacenter DC0')
        assert snapshot_names(si, parent) == [] and vm_names(si) == before
        assert term.recorded() == (0, 0)

        si.RetrieveContent().rootFolder.childEntity[0].vmFolder.CreateFolder("Training")
        check = term("check")
        assert check.code == 0, check.out
        assert check.out.strip().splitlines()[-1] == "All checks passed: ready to deploy."

        # vcsim copies whatever diskMoveType says: the first clone is a full copy, removed,
        # and the other two are not attempted.
        result = term("deploy", "vm", "3", "as", "probe")
        after = vm_names(si)
        snapshots = snapshot_names(si, parent)
    finally:
        Disconnect(si)
    assert result.code == 1
    out = result.out
    assert "0 of 3 linked clones ready in probe" in out
    assert "failed: TRN-VM-001 (vm): TRN-VM-001 came out as a full copy" in out
    assert "It was removed. Possible causes:" in out
    assert "ignores linked cloning" in out and out.count("Possible causes") == 1
    assert "failed: 2 vm clones (TRN-VM-002, TRN-VM-003): not attempted: vm stopped" in out
    assert (
        "vm stopped at its first full copy (TRN-VM-001, removed); 2 vm clones not attempted" in out
    )
    assert after == before  # nothing kept: the copy was destroyed
    assert snapshots == ["clones-base"]  # the base snapshot stays for a fixed endpoint
    clones = term.clones("probe")
    assert {c.state for c in clones.values()} == {CloneState.FAILED}
    assert all(c.moref is None for c in clones.values())
