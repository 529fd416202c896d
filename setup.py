"""Build hooks: every wheel, sdist and editable install carries the built web pages.

The package's metadata is all in pyproject.toml. This file adds one command, ``build_frontend``
(the rule lives in build_support/frontend.py), and runs it first in ``build`` (so wheels and
editable installs), in ``build_py`` and in ``sdist``. When the pages cannot be built, the build
stops with one line saying what is missing instead of making a package without them.
"""

from __future__ import annotations

import os
import sys

from setuptools import Command, setup
from setuptools.command.build import build
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

# The build backend runs this file with the project as working directory but not on sys.path.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from build_support import frontend


class BuildFrontend(Command):
    description = "bundle the web pages' scripts and styles with npm, unless the bundle is up to date"
    user_options: list[tuple[str, str | None, str]] = []

    def initialize_options(self) -> None:
        pass

    def finalize_options(self) -> None:
        pass

    def run(self) -> None:
        try:
            frontend.ensure_built(log=lambda message: self.announce(message, level=2))
        except frontend.FrontendError as exc:
            # SystemExit, not an Exception: setuptools prints it as the build's last line, where an
            # Exception would get a traceback (and the editable install would only warn and go on).
            raise SystemExit(f"error: celery-monitor: {exc}") from None


class BuildWithFrontend(build):
    sub_commands = [("build_frontend", None), *build.sub_commands]


class BuildPyWithFrontend(build_py):
    def run(self) -> None:
        self.run_command("build_frontend")
        # The package data list may have been computed before the bundle existed: compute it again.
        self.__dict__.pop("data_files", None)
        super().run()


class SdistWithFrontend(sdist):
    def run(self) -> None:
        self.run_command("build_frontend")  # before the file list is made, so it includes the bundle
        super().run()


setup(cmdclass={
    "build_frontend": BuildFrontend,
    "build": BuildWithFrontend,
    "build_py": BuildPyWithFrontend,
    "sdist": SdistWithFrontend,
})
