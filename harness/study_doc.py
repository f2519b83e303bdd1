"""The study's results document, built from its variants' records: the
head (params, versions), one entry per variant with its figures per
workload (results.workload_entry, the ceilings of every round beside them),
its rounds (backends, refusals, processes, memory), the extra windows and
the mixed load; and the nginx ceiling, started beside the first system
that needs it."""

import os
import statistics

from harness import meta, results
from harness.ceilings import start_nginx
from harness.measure import Target
from harness.tools import Fatal, first_line, http_get


class NginxCeiling:
    """nginx answering the /version body of the first system it is asked
    for (the reference's, since it runs first in a round)."""

    def __init__(self, site):
        self.site = site
        self.target = None

    def ensure(self, beside):
        if self.target is None:
            status, body = http_get(f"{beside.url}/version", timeout=10)
            if not 200 <= status < 300:
                raise Fatal(f"GET {beside.url}/version failed")
            site = self.site
            nginx = start_nginx(
                body.decode("utf-8", "replace"),
                site.tmp,
                len(os.sched_getaffinity(0)),
                site.accounting,
                host=site.host("app1"),
            )
            site.cleanup.push(nginx.stop)
            self.target = Target("nginx", nginx.url, "nginx", nginx.check_alive)
        return self.target


def head(study, commit, dirty, accounting, db, site, oha):
    settings = study.settings
    params = meta.params(
        settings,
        study.workloads,
        implementations=[variant.name for variant in study.variants],
        systems=[variant.name for variant in study.variants],
        concurrency=list(settings.concurrency),
        mixed_fib_rate=settings.mixed_fib_rate if study.mixed_enabled() else 0,
        asyncpg_split=settings.asyncpg_split,
        sweep=settings.sweep,
        pool_size_env=os.environ.get("POOL_SIZE", ""),
        pipeline_ceiling_clients=4,
        contract_first=True,
        database="throwaway",
        transport="tcp",
    )
    out = meta.document_head(
        "compare", settings, study.command_line, commit, dirty, accounting, params
    )
    venv_python = os.path.join(
        os.path.dirname(os.path.dirname(__file__)), "peers", ".venv", "bin", "python"
    )
    tools = ["wrk", "pgbench", "rustc", "go", "pypy3"]
    if any(workload.ceiling == "nginx" for workload in study.workloads):
        tools.append("nginx")
    if settings.pooler != "none":
        tools.append("pgbouncer")
    versions = meta.versions(tools, oha)
    if os.access(venv_python, os.X_OK):
        versions["python"] = first_line([venv_python, "--version"])
    versions["postgresql"] = db.value("SELECT version()")
    versions["server"] = first_line([settings.binary, "--version"])
    out["versions"] = versions
    out["postgresql"] = {"settings": db.settings()}
    out["topology"] = site.describe()
    return out


def _infos(study):
    settings = study.settings
    return [
        {
            "name": workload.name,
            "path": workload.path,
            "ceiling": workload.ceiling if settings.ceilings else "none",
        }
        for workload in study.workloads
    ]


def document(study, head_fields):
    doc = {"schema_version": results.SCHEMA_VERSION}
    doc.update(head_fields)
    infos = _infos(study)
    doc["systems"] = [variant_entry(study, variant, infos) for variant in study.variants]
    everything = [*study.ceilings, *study.ceiling_fixed]
    for variant in study.variants:
        everything += [*variant.measurements, *variant.fixed]
    doc["noise"] = {
        key: value for key, value in results.noise_summary(everything).items() if key != "windows"
    }
    return doc


def _extra_sort_key(name):
    base, _, level = name.partition("@")
    return (base, int(level) if level.isdigit() else 0)


def variant_entry(study, variant, infos):
    entry = {
        "name": variant.name,
        "system": variant.system.name,
        "stack": variant.system.stack,
        "server_model": variant.system.server_model,
        "connections_model": variant.system.connections,
        "pooler": variant.placement.pooler,
        "placement": variant.placement.as_dict(),
        "knobs": variant.knobs,
        "status": variant.status,
        "reason": variant.reason,
        "rounds": variant.rounds,
        "conformance": variant.contract,
    }
    rounds = variant.rounds

    def values(key):
        return [one[key] for one in rounds if one.get(key) is not None]

    entry["backends_peak"] = max(values("backends_peak"), default=None)
    entry["backends_idle"] = (
        statistics.median(values("backends_idle")) if values("backends_idle") else None
    )
    entry["refused_connections"] = sum(values("refused_connections"))
    entry["first_refusal"] = next((text for text in values("first_refusal") if text), "")
    entry["processes"] = max(values("processes"), default=None)
    entry["peak_rss_kib"] = max(values("peak_rss_kib"), default=None)
    entry["ready_s"] = statistics.median(values("ready_s")) if values("ready_s") else None
    if not variant.measurements:
        entry["workloads"] = []
        return entry
    names = [info["name"] for info in infos]
    entry["workloads"] = [
        results.workload_entry(
            info,
            [m for m in [*variant.measurements, *study.ceilings] if m.workload == info["name"]],
            [f for f in [*variant.fixed, *study.ceiling_fixed] if f.workload == info["name"]],
        )
        for info in infos
    ]
    extra = sorted(
        {m.workload for m in variant.measurements if m.workload not in names}, key=_extra_sort_key
    )
    entry["more"] = [
        results.workload_entry(
            {"name": name, "path": "", "ceiling": "none"},
            [m for m in variant.measurements if m.workload == name],
            [],
        )
        for name in extra
    ]
    mixed_names = sorted(
        {f.workload[len("mixed_") :] for f in variant.fixed if f.workload.startswith("mixed_")}
    )
    entry["mixed"] = {
        name: results.fixed_rate_rows(
            [f for f in variant.fixed if f.workload == f"mixed_{name}"], "server"
        )
        for name in mixed_names
    }
    return entry
