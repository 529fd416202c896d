from __future__ import annotations

from celery_monitor.cli.main import main

if __name__ == "__main__":
    main()
