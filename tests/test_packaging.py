"""The wheel is the product: built from the project, installed into a fresh virtual environment
outside the checkout, it builds and runs the lab vCenter and the demo on its own (the Go sources
and the default spec are package data)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from bot.adapters.lab import cache_root

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("bot", "handlers", "storage", "lab", "pyproject.toml", "README.md")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_wheel(tmp_path: Path) -> Path:
    """`pip wheel --no-deps` of a copy of the project (the checkout stays untouched); pip
    fetches the build backend from the package index, nothing else."""
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, src / name)
    out = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    (wheel,) = out.glob("clones-*.whl")
    return wheel


@pytest.mark.lab
def test_an_installed_wheel_runs_the_lab_and_the_demo(tmp_path: Path, lab_binary: Path) -> None:
    wheel = build_wheel(tmp_path)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=True)  # dependencies: the system's
    bindir = env_dir / "bin"
    # --ignore-installed: the system may hold this project already (an editable install of a
    # checkout); the venv gets the wheel's own copy, which is what the test runs.
    pip = [str(bindir / "python"), "-m", "pip", "install", "--no-deps", "--ignore-installed"]
    subprocess.run(
        [*pip, "-q", str(wheel)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CLONES_CONFIG")}
    env.update(
        CLONES_LAB_DIR=str(tmp_path / "lab-state"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),  # no lab binary yet: it is built from the wheel
        GOCACHE=str(cache_root() / "go-build"),  # ...reusing compiled packages (a quick link)
    )

    def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=timeout
        )

    where = run(
        str(bindir / "python"),
        "-c",
        "import bot, bot.adapters.lab as lab; print(bot.__file__); print(lab.LAB_SOURCE_DIR)",
    )
    module, sources = where.stdout.split()
    assert module.startswith(str(env_dir)) and sources.startswith(str(env_dir)), where.stdout
    assert Path(sources, "main.go").is_file() and Path(sources, "default-spec.json").is_file()
    assert not list(Path(sources).glob("*_test.go"))  # the lab's Go tests stay in the checkout

    clones = str(bindir / "clones")
    up = run(clones, "lab", "up", "--port", str(free_port()))
    try:
        assert up.returncode == 0, up.stderr
        assert "lab vCenter running at http://127.0.0.1:" in up.stdout
        assert list((tmp_path / "cache" / "clones").glob("lab-*/clones-lab"))

        demo = run(clones, "demo", "--chart", str(tmp_path / "savings.png"))
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "75 of 75 linked clones ready in demo" in demo.stdout
        assert "Stripped back demo: 75 clones destroyed" in demo.stdout
        assert (tmp_path / "savings.png").stat().st_size > 0
    finally:
        down = run(clones, "lab", "down", timeout=60)
    assert down.stdout.strip() == "lab vCenter stopped."


def test_every_package_of_the_checkout_is_in_the_wheel() -> None:
    """pyproject.toml lists packages by hand (lab/ ships as bot.labsrc): a new subpackage that
    is not listed would be missing from an installed `clones`."""
    import tomllib

    root = Path(__file__).resolve().parent.parent
    listed = set(
        tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(init.parent.relative_to(root).parts)
        for top in ("bot", "handlers", "storage")
        for init in (root / top).rglob("__init__.py")
    }
    assert found <= listed, sorted(found - listed)
