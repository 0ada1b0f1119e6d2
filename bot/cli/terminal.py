"""Terminal-only verbs: `clones lab up|down|status|build`, `clones demo` and
`clones thumbprint [URL]` (vCenter's certificate fingerprint, to pin)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

from bot.cli.options import EXIT_ERROR, EXIT_OK, TERMINAL_HELP, TERMINAL_VERBS, Options
from bot.cli.progress import Progress
from bot.cli.render import View, show_deploy, show_teardown
from bot.cli.wiring import Wiring
from bot.domain import grammar
from bot.domain.errors import UsageError
from bot.services.dispatch import Invocation, dispatch
from bot.settings import BUNDLED_LAB_CONFIG, load_settings

if TYPE_CHECKING:
    from bot.certificates import Inspection

__all__ = ["TERMINAL_HELP", "TERMINAL_VERBS", "run_terminal_verb"]


def run_terminal_verb(words: list[str], opts: Options, out: TextIO, wiring: Wiring) -> int | None:
    """Run `words` if they name a terminal-only verb; None when they do not."""
    verb, rest = (words[0], words[1:]) if words else ("", [])
    if verb == "lab":
        return lab(rest, opts, out, wiring)
    if verb == "demo":
        return demo(rest, opts, out, wiring)
    if verb == "thumbprint":
        return thumbprint(rest, opts, out, wiring)
    return None


def thumbprint(words: list[str], opts: Options, out: TextIO, wiring: Wiring) -> int:
    """`clones thumbprint [URL|HOST[:PORT]]`: the certificate an endpoint presents (default:
    the configured vCenter), whether the configuration trusts it, and the line that pins it."""
    if len(words) > 1:
        raise UsageError("Usage: clones thumbprint [https://vcenter.example.com/sdk | HOST[:PORT]]")
    trust: dict[str, Any] = {}
    if words:
        target = words[0] if "://" in words[0] else f"https://{words[0]}"
    else:
        vc = load_settings(opts.config).vcenter
        if vc.is_lab:
            raise UsageError(
                'The lab vCenter (url = "lab") speaks plain http: it has no certificate. Give '
                "an address: clones thumbprint vcenter.example.com"
            )
        target = vc.url
        trust = {"insecure": vc.insecure, "ca_file": vc.ca_file, "thumbprint": vc.thumbprint}
        trust["timeout"] = vc.timeout_s
    parsed = urlsplit(target)
    if parsed.scheme != "https" or not parsed.hostname:
        raise UsageError(f"{target} is not an https address; e.g. clones thumbprint vc.example.com")
    host, port = parsed.hostname, parsed.port or 443
    seen = wiring.trust.inspect(host, port, **trust)
    _show_certificate(seen, trust, opts, out)
    return EXIT_OK


def _show_certificate(seen: Inspection, trust: dict[str, Any], opts: Options, out: TextIO) -> None:
    """What `clones thumbprint` prints: the certificate, the verdict of the configuration's
    trust settings (when there are some), and the pin line (in place of insecure = true)."""
    cert = seen.certificate
    if opts.json:
        data = {
            "host": seen.host,
            "port": seen.port,
            "sha256": cert.sha256,
            "sha1": cert.sha1,
            "subject": cert.subject,
            "issuer": cert.issuer,
            "not_after": cert.not_after,
            "names": list(cert.names),
            "trusted": seen.trusted,
            "reason": seen.reason,
            "pin": seen.toml_line,
            "remove": "insecure = true" if trust.get("insecure") else None,
        }
        print(json.dumps(data, indent=2), file=out)
        return
    print(f"{seen.host}:{seen.port} presents this certificate:", file=out)
    print(f"  SHA-256   {cert.sha256}", file=out)
    print(
        f"  SHA-1     {cert.sha1.removeprefix('SHA1:')} (older vSphere screens show this)", file=out
    )
    if cert.subject:
        print(f"  subject   {cert.subject}", file=out)
        print(f"  issuer    {cert.issuer}", file=out)
        print(f"  expires   {cert.not_after}", file=out)
        print(f"  names     {', '.join(cert.names) or '(none)'}", file=out)
    if trust:
        verdict = "trusted by clones.toml" if seen.trusted else f"NOT trusted: {seen.reason}"
        print(f"With the current [vcenter] settings: {verdict}", file=out)
    # insecure = true and a pin cannot be set together: the pin replaces it.
    instead = ", in place of insecure = true" if trust.get("insecure") else ""
    print(
        "Compare the SHA-256 fingerprint with vCenter's own (vSphere Client, Administration, "
        f"Certificate Management, Machine SSL certificate), then pin it under [vcenter]{instead}:",
        file=out,
    )
    print(f"  {seen.toml_line}", file=out)
    if instead:
        print("  # and remove: insecure = true", file=out)


def lab(words: list[str], opts: Options, out: TextIO, wiring: Wiring) -> int:
    parser = argparse.ArgumentParser(prog="clones lab", exit_on_error=False, add_help=False)
    parser.add_argument("action", choices=["up", "down", "status", "build"])
    parser.add_argument("--spec", type=Path)
    parser.add_argument("--port", type=int)
    parser.add_argument("--restart", action="store_true")
    try:
        args = parser.parse_args(words)
    except (argparse.ArgumentError, SystemExit):
        raise UsageError(
            "Usage: clones lab up [--spec FILE] [--port N] [--restart] | clones lab down | "
            "clones lab status | clones lab build"
        ) from None
    if args.action == "build":
        path = wiring.lab.build(lambda m: print(m, file=sys.stderr))
        print(f"lab vCenter built: {path}", file=out)
        return EXIT_OK
    if args.action == "down":
        stopped = wiring.lab.down()
        print("lab vCenter stopped." if stopped else "lab vCenter was not running.", file=out)
        return EXIT_OK
    if args.action == "status":
        info = wiring.lab.running()
        if info is None:
            print("lab vCenter is not running; start it with `clones lab up`.", file=out)
            return EXIT_ERROR
    else:
        info = wiring.lab.up(args.spec, args.port, restart=args.restart)
    if opts.json:
        print(json.dumps(info.__dict__, indent=2), file=out)
    else:
        print(
            f"lab vCenter running at {info.url} (pid {info.pid})\n"
            f"  user {info.user}, password {info.password} (a lab-only password)\n"
            f"  control {info.control}\n"
            "The bundled configuration uses it: `clones types`, `clones deploy capture 5 as try`.",
            file=out,
        )
    return EXIT_OK


def demo(words: list[str], opts: Options, out: TextIO, wiring: Wiring) -> int:
    """The origin's lab: 25 clones of each type, the savings table and chart, then strip back."""
    if words:
        raise UsageError("Usage: clones demo [--chart FILE]")
    settings = load_settings(opts.config) if opts.config else load_settings(BUNDLED_LAB_CONFIG)
    if not settings.vcenter.is_lab:
        raise UsageError('The demo runs against the bundled lab vCenter only (url = "lab").')
    workdir = Path(tempfile.mkdtemp(prefix="clones-demo-"))
    settings = replace(settings, database=workdir / "demo.db")
    chart = opts.chart or Path("savings.png")
    services = wiring.build(settings)
    try:
        env = "demo"
        items = " ".join(f"{t} 25" for t in settings.types)
        print(f"Demo: deploy {items} as {env} against the lab vCenter", file=out)
        command = grammar.parse(f"deploy {items} as {env}")
        shown = replace(opts, json=False, yes=True, chart=chart)
        with Progress(out, enabled=True) as progress:
            deployed = dispatch(services, command, Invocation("demo", "cli", on_event=progress))
        code = show_deploy(deployed, View(command, shown, out, services))  # type: ignore[arg-type]
        teardown = grammar.Teardown(env)
        with Progress(out, enabled=True) as progress:
            stripped = dispatch(services, teardown, Invocation("demo", "cli", on_event=progress))
        show_teardown(stripped, View(teardown, replace(shown, chart=None), out, services))  # type: ignore[arg-type]
        return code
    finally:
        services.close()
