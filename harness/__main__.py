"""`python3 -m harness`: hands the command line to cli.main."""

import sys

from harness.cli import main

sys.exit(main())
