"""Liveness and readiness: /readyz follows the database, the broker and Triton as each is stopped and started."""
from __future__ import annotations

import secrets

import pytest

from hashtale.db.session import migrate
from hashtale.inference.tritonserver import TritonServer, free_port
from tests.support.servers import PostgresServer, RedisServer
from hashtale.webhook import create_app


@pytest.fixture
def servers(tmp_path):
    postgres, broker = PostgresServer(), RedisServer(free_port(), tmp_path)
    postgres.start()
    broker.start()
    migrate(postgres.url)
    yield postgres, broker
    broker.crash()
    postgres.close()


def _ready(client) -> tuple[int, dict]:
    response = client.get("/readyz")
    return response.status_code, response.get_json()


def test_healthz_answers_without_touching_a_dependency(tmp_path):
    dead = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"
    client = create_app({"database_url": dead, "broker_url": "redis://127.0.0.1:1/0", "media_dir": str(tmp_path),
                         "secret_key": secrets.token_hex()}).test_client()
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}
    status, body = _ready(client)
    assert status == 503 and body["failing"] == ["database", "broker"]


@pytest.mark.slow  # a tritonserver, PostgreSQL and Redis of its own
def test_readyz_follows_postgresql_redis_and_triton(servers, tmp_path):
    postgres, broker = servers
    with TritonServer() as triton:
        app = create_app({"database_url": postgres.url, "broker_url": broker.url, "media_dir": str(tmp_path),
                          "inference_backend": "triton", "triton_url": triton.grpc_url, "triton_protocol": "grpc",
                          "secret_key": secrets.token_hex()})
        client = app.test_client()
        assert _ready(client) == (200, {"status": "ready",
                                        "checks": {"database": "ok", "broker": "ok", "triton": "ok"}})

        postgres.stop()
        status, body = _ready(client)
        assert status == 503 and body["status"] == "unavailable" and body["failing"] == ["database"]
        assert body["checks"]["broker"] == body["checks"]["triton"] == "ok"
        postgres.start()
        assert _ready(client)[0] == 200  # the pool's dead connections are renewed, no restart needed

        broker.crash()
        status, body = _ready(client)
        assert status == 503 and body["failing"] == ["broker"]
        broker.start()
        assert _ready(client)[0] == 200

        triton.stop()
        status, body = _ready(client)
        assert status == 503 and body["failing"] == ["triton"]
        triton.start()
        assert _ready(client)[0] == 200


def test_the_embedded_default_is_ready(tmp_path, sqlite_url):
    migrate(sqlite_url)
    client = create_app({"database_url": sqlite_url, "broker_url": f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}",
                         "media_dir": str(tmp_path / "media")}).test_client()
    assert _ready(client) == (200, {"status": "ready", "checks": {"database": "ok", "broker": "ok"}})
