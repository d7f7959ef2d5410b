from hashtale.settings import Settings


def test_from_env_parses_types_and_ignores_empty_values():
    s = Settings.from_env({"DATABASE_URL": "postgresql+psycopg://u@h/db", "MAX_CONTENT_LENGTH": "1024",
                           "STORY_TEMPERATURE": "0.5", "WEBHOOK_SECRET": ""})
    assert s.database_url == "postgresql+psycopg://u@h/db"
    assert s.max_content_length == 1024
    assert s.story_temperature == 0.5
    assert s.webhook_secret == ""


def test_overrides_win_over_environment():
    s = Settings.from_env({"INFERENCE_BACKEND": "triton"}, inference_backend="local")
    assert s.inference_backend == "local"


def test_embedded_defaults_need_no_server():
    s = Settings.from_env({})
    assert s.database_url.startswith("sqlite:///")
    assert s.broker_url.startswith("sqla+sqlite:///")


def test_booleans_parse_from_words_and_refuse_anything_else():
    import pytest

    assert Settings.from_env({"SECURE_COOKIES": "true"}).secure_cookies is True
    assert Settings.from_env({"SECURE_COOKIES": "0"}).secure_cookies is False
    with pytest.raises(ValueError):
        Settings.from_env({"SECURE_COOKIES": "maybe"})


def test_the_database_password_can_come_from_its_own_secret_file(tmp_path):
    secret = tmp_path / "postgres_password"
    secret.write_text("s3cr:t/@x\n")
    s = Settings.from_env({"DATABASE_URL": "postgresql+psycopg://hashtale@postgres:5432/hashtale",
                           "DATABASE_PASSWORD_FILE": str(secret)})
    from sqlalchemy.engine import make_url

    url = make_url(s.database_url)
    assert (url.username, url.password, url.host, url.database) == ("hashtale", "s3cr:t/@x", "postgres", "hashtale")


def test_booleans_parse_strictly():
    assert Settings.from_env({"ADMIN_ENABLED": "false"}).admin_enabled is False
    assert Settings.from_env({}).admin_enabled is True
