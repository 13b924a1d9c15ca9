"""Fault tests: worker kills, Redis and Postgres outages, a fuzzed API and a load run.

Tests that break servers use the fault farm (tests/fixtures/fault_farm.py: embedded Postgres
and Redis of their own), never the machine's servers that other suites share.
"""

from tests.fixtures.fault_farm import fault_farm  # noqa: F401  (registers the fixture)
