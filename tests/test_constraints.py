"""The installed versions are the tested ones: a new Celery or kombu release must not change the broker's behaviour
under us unnoticed (constraints.txt, used by scripts/install.sh and both images)."""
from __future__ import annotations

from importlib.metadata import version

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from hashtale.settings import PROJECT_ROOT

# The broker and task stack whose behaviour the resilience tests pin down, and the model runtime.
MUST_MATCH = ("celery", "kombu", "billiard", "amqp", "vine", "redis", "sqlalchemy", "psycopg", "flask", "werkzeug",
              "gunicorn", "torch", "numpy", "tritonclient", "prometheus-client")


def pinned() -> dict[str, str]:
    pins = {}
    for line in (PROJECT_ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", line
            pins[canonicalize_name(requirement.name)] = spec.version
    return pins


def test_the_broker_and_model_stack_is_installed_at_the_tested_versions():
    pins = pinned()
    drift = {name: (version(name), pins.get(name)) for name in MUST_MATCH if version(name) != pins.get(name)}
    assert drift == {}, f"installed vs constraints.txt: {drift}; run scripts/install.sh (or freeze and re-test)"
