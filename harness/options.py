"""Command-line words → Settings: the argument types, the options of one
command put on its argparse parser (from Settings' declaration), and
`from_args`, which applies the profiles' defaults (--quick, the study's,
--target's) and the checks that span several options. Nothing else reads
an argparse namespace."""

import dataclasses
import os
import re

from harness.settings import RUN, STUDY, Settings
from harness.tools import ROOT, Fatal


def _default_text(spec):
    default = spec.default
    if isinstance(default, tuple):
        default = ",".join(
            f"{value:g}" if isinstance(value, float) else str(value) for value in default
        )
    text = f"default {default}" if default not in ("", None, True, False) else ""
    for profile, value in spec.metadata["profiles"].items():
        if isinstance(value, tuple):
            value = ",".join(str(one) for one in value) or "none"
        text += f"{'; ' if text else ''}{'--' if profile == 'quick' else ''}{profile} {value}"
    return f" ({text})" if text else ""


def add_options(parser, command):
    """Adds the options of `command` (run, compare, flamegraph) to parser;
    unset ones parse as None, so that from_args can tell them apart."""
    for spec in dataclasses.fields(Settings):
        flags = spec.metadata["flags"]
        if not flags or command not in spec.metadata["commands"]:
            continue
        parser.add_argument(
            *flags,
            dest=spec.name,
            default=None,
            help=spec.metadata["help"] + _default_text(spec),
            **spec.metadata["argparse"],
        )


def from_args(namespace, command):
    """Settings from a parsed namespace: typed values, else the profile's
    default (--quick, then the command's own, then --target's), else the
    field's. Raises Fatal on a combination that cannot work."""
    given = {
        spec.name: getattr(namespace, spec.name)
        for spec in dataclasses.fields(Settings)
        if getattr(namespace, spec.name, None) is not None
    }
    profiles = [
        name
        for name, active in (
            ("quick", given.get("quick")),
            ("sweep", given.get("sweep")),
            ("compare", command == STUDY),
            ("target", bool(given.get("target"))),
        )
        if active
    ]
    values = {}
    for spec in dataclasses.fields(Settings):
        if spec.name in given:
            values[spec.name] = given[spec.name]
            continue
        for profile in profiles:
            if profile in spec.metadata["profiles"]:
                values[spec.name] = spec.metadata["profiles"][profile]
                break
    if values.get("fixed_rate_forced"):
        values["fixed_rate"] = True
    if isinstance(values.get("server_args"), str):
        values["server_args"] = tuple(values["server_args"].split())
    values["contacts_given"] = "contacts" in given
    settings = Settings(**values)
    return check(settings, command, given)


def check(settings, command, given=()):
    """The checks that involve several options, and the derived paths."""
    if settings.threads > settings.connections:
        raise Fatal(
            f"--threads ({settings.threads}) cannot exceed --connections "
            f"({settings.connections}): wrk and pgbench need a connection per thread"
        )
    if settings.label and not re.fullmatch(r"[A-Za-z0-9._-]+", settings.label):
        raise Fatal("--label may hold only letters, digits, '.', '_' and '-'")
    changes = {}
    if settings.target:
        target = settings.target.rstrip("/")
        if not re.fullmatch(r"http://[^/]+(/.*)?", target):
            raise Fatal(f"--target must be an http:// URL, not '{settings.target}'")
        if "name" not in given:
            raise Fatal("--target needs --name NAME, to tell its results apart")
        if settings.server_args:
            raise Fatal(
                "--server-args configures our server; with --target, configure the target yourself"
            )
        if settings.uses_hosts:
            raise Fatal(
                "--target is a server of yours: --rtt-ms, --instances and --hosts place ours"
            )
        changes["target"] = target
    else:
        if "name" in given and command == RUN:
            raise Fatal("--name goes with --target (our server is always 'bakeoff')")
        if settings.target_pid:
            raise Fatal("--target-pid goes with --target")
    if settings.binary:
        if not os.access(settings.binary, os.X_OK):
            raise Fatal(f"--binary: no executable at {settings.binary}")
        changes.update(binary=os.path.abspath(settings.binary), build=False)
    else:
        changes["binary"] = os.path.join(ROOT, "target", "release", "bakeoff")
    if settings.uses_hosts and (settings.pin_server or settings.pin_db or settings.pin_wrk):
        raise Fatal("pinning (--pin-*) and hosts (--rtt-ms, --instances, --hosts) do not mix yet")
    if settings.uses_hosts and settings.transport != "tcp":
        raise Fatal("--transport unix needs one host: the database would be on another")
    return dataclasses.replace(settings, **changes)
