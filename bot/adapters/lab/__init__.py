"""The lab vCenter: building, starting and controlling the Go simulator in `lab/`.

The lab is govmomi's vCenter simulator populated from a JSON spec (docs/lab-spec.md); pyvmomi
talks to it unchanged over plain HTTP (`protocol="http"`). Nothing here imports pyVmomi.

- build: the Go toolchain, `go build` and the cache of built binaries (`ensure_built`);
- spec: specs, checked by the binary itself (`clones-lab --check`), the only validator;
- control: `LabControl`, the client of the JSON control API under /lab;
- process: `LabProcess`, a lab as a child process on a free port (tests);
- state: `lab_up` / `lab_down` / `running_lab`, the user's detached lab and its state folder.
"""

from bot.adapters.lab.build import DEFAULT_SPEC, LAB_SOURCE_DIR, cache_root, ensure_built
from bot.adapters.lab.control import LabControl
from bot.adapters.lab.info import LabError, LabInfo
from bot.adapters.lab.process import LabProcess
from bot.adapters.lab.spec import deep_merge, validate_spec, validate_spec_data
from bot.adapters.lab.state import DEFAULT_PORT, lab_down, lab_up, running_lab

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_SPEC",
    "LAB_SOURCE_DIR",
    "LabControl",
    "LabError",
    "LabInfo",
    "LabProcess",
    "cache_root",
    "deep_merge",
    "ensure_built",
    "lab_down",
    "lab_up",
    "running_lab",
    "validate_spec",
    "validate_spec_data",
]
