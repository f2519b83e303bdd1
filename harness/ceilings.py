"""The ceiling of the /version workloads: a throwaway nginx
(scripts/nginx.conf) answering /version with the server's own body, from
memory, with as many workers as the server may use CPUs. It runs in the
"nginx" component's cgroup, on the server's host. (The database workloads'
ceilings are pgbench runs: measure.Bench.pgbench_ceiling.)"""

import os
import re

from harness.process import Process
from harness.tools import SCRIPTS, Fatal, free_port, http_get, log, need_tool


def start_nginx(body, tmp, workers, accounting, host=None, pin=()):
    """nginx answering /version with `body`; its Process (url set)."""
    # The body goes into a single-quoted nginx string: keep it to characters
    # that need no escaping there (a version body always is).
    if not re.fullmatch(r'[][A-Za-z0-9{}":.,_+ -]+', body):
        raise Fatal(f"cannot put this /version body into nginx.conf: {body}")
    directory = os.path.join(tmp, "nginx")
    os.makedirs(os.path.join(directory, "logs"), exist_ok=True)
    os.makedirs(os.path.join(directory, "tmp"), exist_ok=True)
    address = host.address if host else "127.0.0.1"
    port = free_port()
    with open(os.path.join(SCRIPTS, "nginx.conf"), encoding="utf-8") as file:
        conf = file.read()
    for key, value in (
        ("@PREFIX@", directory),
        ("@ADDRESS@", address),
        ("@PORT@", str(port)),
        ("@WORKERS@", str(workers)),
        ("@BODY@", body),
    ):
        conf = conf.replace(key, value)
    conf_path = os.path.join(directory, "nginx.conf")
    with open(conf_path, "w", encoding="utf-8") as file:
        file.write(conf)
    argv = [*pin, need_tool("nginx"), "-p", directory + "/", "-c", conf_path]
    argv += ["-e", f"{directory}/logs/error.log"]
    nginx = Process(
        "nginx",
        argv,
        component="nginx",
        accounting=accounting,
        log_path=os.path.join(directory, "logs", "stdout.log"),
        host=host,
    )
    url = f"http://{address}:{port}"
    try:
        nginx.wait_ready(url, "/version", timeout=10)
    except Exception as error:
        nginx.stop(quiet=True, grace=5)
        raise Fatal(f"nginx did not start ({error}); see {directory}/logs") from error
    got = http_get(f"{url}/version")[1].decode("utf-8", "replace")
    if got != body:
        nginx.stop(quiet=True, grace=5)
        raise Fatal(f"nginx answers /version with {got!r}, not {body}")
    log(f"nginx (ceiling of /version) on {url}, {workers} worker(s)")
    return nginx
