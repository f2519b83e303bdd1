"""front.py: HAProxy's configuration in front of a system's instances."""

import unittest

from harness import front


class FrontConfigTests(unittest.TestCase):
    def test_the_health_check_sends_the_host_clients_send(self):
        # A system that checks Host (Django's ALLOWED_HOSTS) sees the same
        # Host from the check as from wrk through the front.
        lines = front.http_front_lines(
            "10.0.0.9", 8080, [("app1", "10.0.0.3", "9001"), ("app2", "10.0.0.4", "9002")], "/r"
        )
        self.assertIn(
            "    http-check send meth GET uri /r ver HTTP/1.1 hdr Host 10.0.0.9:8080", lines
        )
        self.assertIn("    bind 10.0.0.9:8080", lines)
        self.assertIn("    server app2 10.0.0.4:9002 check", lines)
