"""A PATH for a process that must not find Node.js: what a machine without it would offer."""

from __future__ import annotations

import os
from pathlib import Path

NODE_TOOLS = frozenset({"node", "nodejs", "npm", "npx", "corepack"})


def path_without_node(directory: Path) -> str:
    """One folder of links to every tool on this PATH except Node.js's, to use as the whole PATH."""
    directory.mkdir(parents=True, exist_ok=True)
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not folder or not Path(folder).is_dir():
            continue
        for tool in Path(folder).iterdir():
            link = directory / tool.name
            if tool.name not in NODE_TOOLS and not link.exists() and not link.is_symlink():
                link.symlink_to(tool)
    return str(directory)
