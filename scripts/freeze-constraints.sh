#!/usr/bin/env bash
# Writes constraints.txt: the exact versions of everything installed in .venv, i.e. the set the test suite last
# passed with. scripts/install.sh and both images install with `-c constraints.txt`, and tests/test_constraints.py
# fails when what is installed drifts from it. Run after changing a dependency, then run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
{
  echo "# The tested versions (scripts/freeze-constraints.sh); pip install -c constraints.txt ..."
  .venv/bin/python -m pip freeze --exclude-editable --all \
    | grep -v -E '^(pip|setuptools|wheel|ruff|pyflakes)==' \
    | sed -E 's/^([A-Za-z0-9_.-]+) @ file:.*\/[A-Za-z0-9_.]+-([0-9][^-]*)-py.*$/\1==\2/'
} > constraints.txt
echo "wrote constraints.txt ($(grep -vc '^#' constraints.txt) packages)"
