"""hosts.py: names, owners, subnet choice and address plans (pure), and,
as root, two real hosts that reach each other and leave nothing behind."""

import ipaddress
import json
import os
import shutil
import subprocess
import sys
import unittest

from harness import hosts, tools


class NameTests(unittest.TestCase):
    def test_names_carry_the_owner_and_fit_an_interface_name(self):
        self.assertEqual(hosts.netns_name(4194303, "front"), "bk4194303-front")
        self.assertEqual(hosts.bridge_name(4194303), "bkbr4194303")
        self.assertEqual(hosts.veth_name(4194303, 253), "bk4194303v253")
        self.assertLessEqual(len(hosts.veth_name(4194303, 253)), hosts.IFNAME_MAX)

    def test_owner_of_our_names_only(self):
        self.assertEqual(hosts.owner_of("bk123-front"), 123)
        self.assertEqual(hosts.owner_of("bk123-app2"), 123)
        self.assertEqual(hosts.owner_of("bkbr123"), 123)
        self.assertEqual(hosts.owner_of("bk123v4"), 123)
        for other in (
            "bk123",
            "bkbr123-x",
            "docker0",
            "bk-front",
            "xbk123-front",
            "bk12a-db",
            "bk1v",
        ):
            self.assertIsNone(hosts.owner_of(other), other)

    def test_host_names_are_checked(self):
        self.assertTrue(hosts.HOST_NAME.match("app12"))
        for bad in ("App", "1db", "a-b", "x" * 17, ""):
            self.assertFalse(hosts.HOST_NAME.match(bad), bad)


class SubnetTests(unittest.TestCase):
    def test_the_owner_picks_the_start_and_used_ones_are_skipped(self):
        self.assertEqual(str(hosts.choose_subnet(5, [])), "10.213.5.0/24")
        self.assertEqual(str(hosts.choose_subnet(256 + 5, [])), "10.213.5.0/24")
        used = [ipaddress.ip_network("10.213.5.0/24"), ipaddress.ip_network("10.213.6.7/32")]
        self.assertEqual(str(hosts.choose_subnet(5, used)), "10.213.7.0/24")

    def test_a_wide_route_blocks_everything(self):
        with self.assertRaises(hosts.Unavailable):
            hosts.choose_subnet(1, [ipaddress.ip_network("10.0.0.0/8")])

    def test_the_last_subnet_wraps_to_the_first(self):
        used = [ipaddress.ip_network("10.213.255.0/24")]
        self.assertEqual(str(hosts.choose_subnet(255, used)), "10.213.0.0/24")

    def test_address_plan(self):
        subnet = ipaddress.ip_network("10.213.9.0/24")
        self.assertEqual(hosts.gateway_address(subnet), "10.213.9.1")
        self.assertEqual(hosts.address_plan(subnet, 0), "10.213.9.2")
        self.assertEqual(hosts.address_plan(subnet, 252), "10.213.9.254")
        with self.assertRaises(ValueError):
            hosts.address_plan(subnet, 253)

    def test_networks_in_use_from_ip_json(self):
        addresses = json.dumps(
            [
                {
                    "ifname": "lo",
                    "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}],
                },
                {"ifname": "eth0", "addr_info": [{"local": "192.0.2.2", "prefixlen": 24}]},
            ]
        )
        routes = json.dumps([{"dst": "default"}, {"dst": "10.213.4.0/24"}, {"dst": "10.9.9.9"}])
        self.assertEqual(
            [str(network) for network in hosts.networks_in_use(addresses, routes)],
            ["127.0.0.0/8", "192.0.2.0/24", "10.213.4.0/24", "10.9.9.9/32"],
        )


class HostTests(unittest.TestCase):
    def test_wrap_enters_the_namespace_and_composes_with_a_cgroup_wrapper(self):
        host = hosts.Host("db", "bk1-db", "10.213.1.2", ip_path="/usr/sbin/ip")
        self.assertEqual(
            host.wrap(["postgres", "-D", "x"]),
            ["/usr/sbin/ip", "netns", "exec", "bk1-db", "postgres", "-D", "x"],
        )
        cgroup_wrapped = ["sh", "-c", 'echo $$ > "$0" && exec "$@"', "/cg/procs"]
        self.assertEqual(
            cgroup_wrapped + host.wrap(["x"]),
            [
                "sh",
                "-c",
                'echo $$ > "$0" && exec "$@"',
                "/cg/procs",
                "/usr/sbin/ip",
                "netns",
                "exec",
                "bk1-db",
                "x",
            ],
        )
        self.assertEqual(host.url(8000, "/readyz"), "http://10.213.1.2:8000/readyz")

    def test_the_loopback_layout_wraps_nothing(self):
        host = hosts.loopback_host("front")
        self.assertEqual(host.wrap(["haproxy"]), ["haproxy"])
        self.assertEqual(host.address, "127.0.0.1")


class UnavailableTests(unittest.TestCase):
    def test_without_root_the_reason_is_given(self):
        from unittest import mock

        with mock.patch("os.geteuid", return_value=1000):
            with self.assertRaisesRegex(hosts.Unavailable, "not root"):
                hosts.Network(tools.Cleanup())


def _namespaces_available():
    try:
        hosts._ip_tool()
    except hosts.Unavailable as reason:
        return str(reason)
    return None


# A listener on one host, a client on another: the client prints what it read.
SERVE = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 7000)); s.listen(); print("ready", flush=True)
c, _ = s.accept(); c.sendall(b"hello from " + sys.argv[1].encode()); c.close()
"""
CONNECT = """
import socket, sys
with socket.create_connection((sys.argv[1], 7000), timeout=5) as c:
    print(c.recv(100).decode())
"""


@unittest.skipIf(_namespaces_available(), f"needs network namespaces: {_namespaces_available()}")
class IntegrationTests(unittest.TestCase):
    """Two real hosts (root only)."""

    def test_two_hosts_reach_each_other_and_the_root_namespace_and_leave_nothing(self):
        cleanup = tools.Cleanup()
        try:
            network = hosts.Network(cleanup)
            one, two = network.add("one"), network.add("two")
            self.assertNotEqual(one.address, two.address)
            server = subprocess.Popen(
                one.wrap([sys.executable, "-c", SERVE, one.address]),
                stdout=subprocess.PIPE,
                text=True,
            )
            cleanup.push(server.kill)
            self.assertEqual(server.stdout.readline().strip(), "ready")
            got = subprocess.run(
                two.wrap([sys.executable, "-c", CONNECT, one.address]),
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
            self.assertEqual(got.stdout.strip(), f"hello from {one.address}", got.stderr)
            server.wait(timeout=10)
            server.stdout.close()
            # The root namespace reaches a host through the bridge's address.
            server = subprocess.Popen(
                two.wrap([sys.executable, "-c", SERVE, two.address]),
                stdout=subprocess.PIPE,
                text=True,
            )
            cleanup.push(server.kill)
            self.assertEqual(server.stdout.readline().strip(), "ready")
            got = subprocess.run(
                [sys.executable, "-c", CONNECT, two.address],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
            self.assertEqual(got.stdout.strip(), f"hello from {two.address}", got.stderr)
            server.wait(timeout=10)
            server.stdout.close()
            # A process left running in a host is killed by close().
            leftover = subprocess.Popen(one.wrap(["sleep", "300"]))
            names = [host.netns for host in (one, two)]
            bridge = network.bridge
        finally:
            cleanup.run()
        leftover.wait(timeout=10)
        namespaces, bridges = hosts.existing()
        for name in names:
            self.assertNotIn(name, namespaces)
        self.assertNotIn(bridge, bridges)
        listed = subprocess.run(
            ["ip", "link", "show"], capture_output=True, text=True, check=False
        ).stdout
        self.assertNotIn(f"bk{os.getpid()}v", listed)

    def test_stale_namespaces_of_a_dead_owner_are_removed_and_live_ones_kept(self):
        dead = subprocess.Popen(["true"])
        dead.wait()
        cleanup = tools.Cleanup()
        try:
            stale = hosts.Network(cleanup, owner=dead.pid)
            stale.add("gone")
            stale_name = stale.hosts["gone"].netns
            cleanup.remove(stale._step)  # as if its run had been killed
            live = hosts.Network(cleanup)  # runs remove_stale() first
            live.add("kept")
            namespaces, bridges = hosts.existing()
            self.assertNotIn(stale_name, namespaces)
            self.assertNotIn(stale.bridge, bridges)
            hosts.remove_stale()
            self.assertIn(live.hosts["kept"].netns, hosts.existing()[0])
        finally:
            cleanup.run()
            if shutil.which("ip"):
                hosts.remove(stale.record())


if __name__ == "__main__":
    unittest.main()
