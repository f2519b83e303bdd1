"""Unit tests of the harness: python3 -m unittest discover -s harness/tests -t ."""
