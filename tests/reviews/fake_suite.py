"""A stand-in test runner for command checks: prints a pytest-style summary and exits like pytest.

Usage: python fake_suite.py PASSED FAILED
"""

import sys

passed, failed = int(sys.argv[1]), int(sys.argv[2])
print("." * passed + "F" * failed)
print(f"{failed} failed, {passed} passed in 0.12s" if failed else f"{passed} passed in 0.12s")
sys.exit(1 if failed else 0)
