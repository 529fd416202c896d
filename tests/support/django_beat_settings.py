"""The smallest Django project django-celery-beat runs in, on TEST_BEAT_DB (a SQLite path or a
postgresql:// URL): for the tests only, which create its tables and entries with Django itself."""

from __future__ import annotations

import os
from urllib.parse import urlsplit


def _database(url: str) -> dict[str, object]:
    if not url.startswith("postgresql://"):
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": url}
    parts = urlsplit(url)
    return {"ENGINE": "django.db.backends.postgresql", "NAME": parts.path.lstrip("/"), "USER": parts.username,
            "PASSWORD": parts.password or "", "HOST": parts.hostname, "PORT": str(parts.port or 5432)}


SECRET_KEY = "tests-only"
INSTALLED_APPS = ["django_celery_beat"]
DATABASES = {"default": _database(os.environ["TEST_BEAT_DB"])}
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
