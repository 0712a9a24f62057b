"""S1: `manage.py check --deploy --fail-level WARNING` is clean with production settings.

Production differs from the embedded default only by environment (docker-compose.yml, .env.example),
so the check runs in a child process with that environment; the control runs it with the embedded
defaults, which must fail (plain HTTP, no HSTS, the development key).
"""

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION = {
    "WATCHPOST_DEBUG": "false",
    "WATCHPOST_SECRET_KEY": secrets.token_urlsafe(50),
    "WATCHPOST_ALLOWED_HOSTS": "watchpost.example.org",
    "WATCHPOST_CSRF_TRUSTED_ORIGINS": "https://watchpost.example.org",
    "WATCHPOST_SECURE_COOKIES": "true",
    "WATCHPOST_HSTS_SECONDS": "31536000",
    "WATCHPOST_HSTS_PRELOAD": "true",
    "WATCHPOST_SSL_REDIRECT": "true",
    "WATCHPOST_BEHIND_TLS_PROXY": "true",
}


def deploy_check(extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # Only the production variables: not the test run's own (the browser tests set DJANGO_ALLOW_ASYNC_UNSAFE).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WATCHPOST_", "PYTEST_", "DJANGO_"))}
    env.update({"CACHE_URL": "locmemcache://", "DJANGO_SETTINGS_MODULE": "config.settings", **extra})
    return subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip


def test_deploy_check_is_clean_with_production_settings() -> None:
    result = deploy_check(PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues (0 silenced)" in result.stdout


def test_control_embedded_defaults_fail_the_deploy_check() -> None:
    result = deploy_check({})
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W009", "security.W012", "security.W016"):
        assert warning in result.stderr
