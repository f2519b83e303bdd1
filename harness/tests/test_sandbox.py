"""sandbox.py: the command line (COMMAND's own options untouched after
`--`), and COMMAND's exit status and signals. The database itself is pg.py's,
run by every check script in CI."""

import os
import signal
import unittest
from unittest import mock

from harness import cli, sandbox
from harness.tools import Fatal, Interrupted


class ParserTests(unittest.TestCase):
    def test_options_before_double_dash_and_the_command_after_it(self):
        parsed = cli.parser().parse_args(
            ["sandbox", "--contacts", "200", "--binary", "b", "--", "sh", "-c", "exit 3", "--x"]
        )
        self.assertEqual(parsed.contacts, 200)
        self.assertEqual(parsed.binary, "b")
        self.assertEqual(parsed.command, ["sh", "-c", "exit 3", "--x"])

    def test_no_contacts_means_no_seeding(self):
        parsed = cli.parser().parse_args(["sandbox", "--", "true"])
        self.assertIsNone(parsed.contacts)
        self.assertTrue(parsed.binary.endswith(os.path.join("target", "release", "bakeoff")))

    def test_contacts_must_be_a_whole_number(self):
        with mock.patch("sys.stderr"), self.assertRaises(SystemExit):
            cli.parser().parse_args(["sandbox", "--contacts", "-5", "--", "true"])

    def test_a_command_is_required(self):
        with mock.patch("sys.stderr"), self.assertRaises(SystemExit):
            cli.parser().parse_args(["sandbox", "--contacts", "5"])


class RunCommandTests(unittest.TestCase):
    def test_the_exit_status_is_the_commands(self):
        self.assertEqual(sandbox.run_command(["sh", "-c", "exit 3"], dict(os.environ)), 3)

    def test_death_by_a_signal_is_128_plus_its_number(self):
        status = sandbox.run_command(["sh", "-c", "kill -TERM $$"], dict(os.environ))
        self.assertEqual(status, 128 + signal.SIGTERM)

    def test_the_command_gets_the_environment_given(self):
        env = dict(os.environ, DATABASE_URL="postgresql://example/bakeoff")
        check = 'test "$DATABASE_URL" = postgresql://example/bakeoff'
        self.assertEqual(sandbox.run_command(["sh", "-c", check], env), 0)

    def test_a_missing_command_is_fatal(self):
        with self.assertRaises(Fatal):
            sandbox.run_command(["/nonexistent/command"], dict(os.environ))

    def test_a_signal_to_the_sandbox_reaches_the_command_which_is_waited_for(self):
        process = mock.Mock()
        process.wait.side_effect = Interrupted(signal.SIGINT)
        with (
            mock.patch("subprocess.Popen", return_value=process),
            mock.patch("harness.tools.stop_child_and_wait") as stop,
            self.assertRaises(Interrupted),
        ):
            sandbox.run_command(["anything"], {})
        stop.assert_called_once_with(process, signal.SIGINT)


class RunTests(unittest.TestCase):
    def test_seeding_without_the_binary_stops_before_any_database(self):
        with (
            mock.patch("harness.pg.Postgres.throwaway") as throwaway,
            self.assertRaises(Fatal) as raised,
        ):
            sandbox.run(["true"], contacts=10, binary="/nonexistent/bakeoff")
        self.assertIn("/nonexistent/bakeoff", str(raised.exception))
        throwaway.assert_not_called()


if __name__ == "__main__":
    unittest.main()
