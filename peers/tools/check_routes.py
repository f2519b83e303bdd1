"""Checks a running row's experiment routes against the contract's routes.

A row's system.toml lists in [routes] the extra routes it serves for
experiments (name = path prefix). Each must answer what its contract
counterpart answers, status, Content-Type and body byte for byte, for
valid and invalid arguments alike:

- a route named fibonacci_* against /fibonacci/{n} (the prefix ends in "/"
  and n follows it), for n = 0..27 and 40 rejected forms;
- a route named contacts_* against /contacts/for (the prefix is a path; the
  page's query string follows it), for pages of every size and bad
  parameters.

    python3 peers/tools/check_routes.py http://127.0.0.1:18000 fastapi_asyncpg

Exit status 1 when an answer differs. Standard library only (Python >= 3.11
for tomllib).
"""

import argparse
import os
import sys
import tomllib
import urllib.error
import urllib.request

PEERS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FIBONACCI_ARGUMENTS = [
    *(str(n) for n in range(28)),
    "-1",
    "41",
    "100",
    "abc",
    "+1",
    "%2B1",
    "1.0",
    "1e1",
    "%20%31",
    "0x1",
    "2147483648",
]
PAGE_QUERIES = [
    "",
    "?limit=10",
    "?limit=100",
    "?limit=200",
    "?limit=100&starts=m",
    "?limit=200&starts=M%C3%BC",
    "?limit=200&offset=9900",
    "?starts=zz",
    "?starts=O%27Brien",
    "?limit=0",
    "?limit=abc",
    "?limit=201",
    "?limit=0&offset=-1&starts=",
    "?starts=",
]


def get(url):
    """(status, Content-Type, body) of a GET."""
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            return response.status, response.headers.get("Content-Type"), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type"), error.read()


def pairs(name, prefix):
    """(experiment path, contract path) to compare for one route."""
    if name.startswith("fibonacci_"):
        return [(prefix + arg, "/fibonacci/" + arg) for arg in FIBONACCI_ARGUMENTS]
    if name.startswith("contacts_"):
        return [(prefix + query, "/contacts/for" + query) for query in PAGE_QUERIES]
    return []


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the row's base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("name", help="the row (peers/NAME/system.toml)")
    options = parser.parse_args()
    with open(os.path.join(PEERS, options.name, "system.toml"), "rb") as file:
        routes = tomllib.load(file).get("routes", {})
    if not routes:
        sys.exit(f"{options.name} declares no [routes]")
    failures = 0
    for name, prefix in routes.items():
        checks = pairs(name, prefix)
        if not checks:
            print(f"{name}: {prefix}: no contract counterpart known; not checked")
            continue
        differing = []
        statuses = {}
        for experiment, contract in checks:
            got, expected = get(options.url + experiment), get(options.url + contract)
            statuses[expected[0]] = statuses.get(expected[0], 0) + 1
            if got != expected:
                differing.append(
                    f"{experiment}: {got[0]} {got[2][:60]!r}; "
                    f"{contract}: {expected[0]} {expected[2][:60]!r}"
                )
        counts = ", ".join(f"{count} x {status}" for status, count in sorted(statuses.items()))
        print(
            f"{name} ({prefix}): {len(checks) - len(differing)} of {len(checks)} answers"
            f" equal to the contract route's ({counts})"
            + ("" if not differing else ":\n  " + "\n  ".join(differing))
        )
        failures += len(differing)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
