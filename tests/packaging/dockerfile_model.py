"""Read the Dockerfile and .dockerignore the way a builder does, and replay build stages on this host.

No container engine runs here, so the tests replay the stages that build the software (their
COPY, ENV, WORKDIR and RUN instructions, in order) under a scratch directory that stands in
for the stage's root file system. Absolute paths in the stage (its WORKDIR, the ENV values
that are paths, COPY destinations) are re-rooted under that directory, so the RUN commands
execute unchanged.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

# What a RUN sees of this machine: its tools and its way to the package registries.
PASSED_THROUGH = re.compile(r"^(PATH|HOME|LANG|LC_ALL|PIP_(CERT|INDEX_URL|EXTRA_INDEX_URL|DEFAULT_TIMEOUT)"
                            r"|SSL_CERT_FILE|SSL_CERT_DIR|REQUESTS_CA_BUNDLE|(HTTPS?|NO)_PROXY|(https?|no)_proxy"
                            r"|NODE_EXTRA_CA_CERTS|NPM_CONFIG_.*|npm_config_.*)$")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction, None for the shell form."""
        text = self.value.strip()
        return list(json.loads(text)) if text.startswith("[") else None

    def split_flags(self) -> tuple[dict[str, str], str]:
        """`--from=web src dest` -> ({"from": "web"}, "src dest")."""
        flags: dict[str, str] = {}
        rest = self.value.strip()
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            name, _, value = flag[2:].partition("=")
            flags[name] = value
            rest = rest.strip()
        return flags, rest


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Instructions with their backslash continuations joined; comments and blank lines dropped."""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # a builder skips these inside continuations too
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        yield start, " ".join(pending)
        pending = []
    if pending:
        yield start, " ".join(pending)


def parse(text: str) -> list[Stage]:
    """The Dockerfile's stages, in order; instructions before the first FROM (ARGs) are dropped."""
    stages: list[Stage] = []
    for line, logical in logical_lines(text):
        keyword, _, value = logical.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = value.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif stages:
            stages[-1].instructions.append(Instruction(keyword, value.strip(), line))
    return stages


def healthcheck_command(stage: Stage) -> list[str]:
    """The exec-form command of the stage's HEALTHCHECK, without its --interval-style flags."""
    healthcheck = stage.last("HEALTHCHECK")
    assert healthcheck is not None, "the stage has no HEALTHCHECK"
    _, _, command = healthcheck.value.partition(" CMD ")
    return list(json.loads(command))


def env_assignments(instruction: Instruction) -> list[tuple[str, str]]:
    words = shlex.split(instruction.value)
    if words and "=" not in words[0]:  # legacy `ENV KEY value`
        return [(words[0], " ".join(words[1:]))]
    return [(key, value) for key, _, value in (word.partition("=") for word in words)]


def expand(value: str, env: Mapping[str, str]) -> str:
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: env.get(m.group(1), ""), value)


# --- .dockerignore --------------------------------------------------------------------------

def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A builder's path pattern: `*` and `?` stay within one folder, `**` spans any number."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            close = pattern.index("]", i)
            out.append("[" + pattern[i + 1 : close].replace("!", "^", 1) + "]")
            i = close + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


@dataclass(frozen=True)
class _Rule:
    include: bool
    pattern: str
    regex: re.Pattern[str]


class DockerIgnore:
    """The builder's rule: the last pattern matching a path (or one of its parent folders) wins."""

    def __init__(self, text: str) -> None:
        self.rules: list[_Rule] = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            include = line.startswith("!")
            pattern = os.path.normpath(line.lstrip("!").strip().strip("/"))
            self.rules.append(_Rule(include, pattern, _pattern_regex(pattern)))

    def excluded(self, relative: str) -> bool:
        parts = relative.split("/")
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        verdict = False
        for rule in self.rules:
            if any(rule.regex.match(candidate) for candidate in candidates):
                verdict = not rule.include
        return verdict

    def _may_include_below(self, folder: str) -> bool:
        return any(rule.include and (rule.pattern.startswith(folder + "/") or "**" in rule.pattern)
                   for rule in self.rules)

    def context_files(self, root: Path) -> list[str]:
        """Every file the build context holds, as paths relative to ``root``."""
        files = []
        for folder, subfolders, names in os.walk(root):
            base = Path(folder).relative_to(root).as_posix()
            prefix = "" if base == "." else base + "/"
            # Do not descend where nothing can be in the context (.venv, node_modules...).
            subfolders[:] = [d for d in subfolders
                             if not self.excluded(prefix + d) or self._may_include_below(prefix + d)]
            files += [prefix + name for name in names if not self.excluded(prefix + name)]
        return sorted(files)


# --- replaying a stage ----------------------------------------------------------------------

@dataclass
class StageRoot:
    """A scratch directory standing in for one stage's file system."""

    root: Path

    def host(self, container_path: str) -> Path:
        return self.root / container_path.lstrip("/")


def reroot(value: str, root: StageRoot) -> str:
    """Literal absolute paths in an ENV value (PATH-like lists too) moved under the stage's root."""
    if not value.startswith("/"):
        return value
    return os.pathsep.join(str(root.host(part)) if part.startswith("/") else part
                           for part in value.split(os.pathsep))


def _copy(source: Path, destination: Path, into_directory: bool) -> None:
    if source.is_dir():
        shutil.copytree(source, destination, dirs_exist_ok=True)
    else:
        target = destination / source.name if into_directory else destination
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def replay(stage: Stage, context: Path, root: StageRoot, stages: Mapping[str, StageRoot],
           shims: Path, log: Path, host_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Run the stage's COPY/ENV/WORKDIR/RUN here; return the environment it ended with.

    ``context`` is the build context after .dockerignore; ``stages`` maps earlier stage names
    to their roots for ``COPY --from``; ``shims`` comes first on PATH (e.g. ``python``);
    ``host_env`` adds variables the stage's own ENV may still override.
    """
    env = {k: v for k, v in os.environ.items() if PASSED_THROUGH.match(k)}
    env.update(host_env or {})
    env["PATH"] = f"{shims}{os.pathsep}{env.get('PATH', '')}"
    workdir = root.host("/")
    supported = {"WORKDIR", "ENV", "COPY", "RUN", "LABEL", "ARG"}
    for instruction in stage.instructions:
        if instruction.keyword not in supported:
            raise AssertionError(f"line {instruction.line}: cannot replay {instruction.keyword} here")
        if instruction.keyword == "WORKDIR":
            workdir = root.host(expand(instruction.value, env))
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction.keyword == "ENV":
            for key, value in env_assignments(instruction):
                env[key] = expand(reroot(value, root), env)
        elif instruction.keyword == "COPY":
            flags, rest = instruction.split_flags()
            *sources, destination = shlex.split(rest)
            source_root = stages[flags["from"]].root if "from" in flags else context
            target = root.host(destination) if destination.startswith("/") else workdir / destination
            into_directory = destination.endswith("/") or len(sources) > 1
            for source in sources:
                found = source_root / source.lstrip("/")
                if not found.exists():
                    raise AssertionError(f"line {instruction.line}: COPY source {source} is not in the "
                                         f"{'stage ' + flags['from'] if 'from' in flags else 'build context'}")
                _copy(found, target, into_directory)
        elif instruction.keyword == "RUN":
            with log.open("a") as out:
                out.write(f"\n$ {instruction.value}\n")
                out.flush()
                done = subprocess.run(["sh", "-c", instruction.value], cwd=workdir, env=env,
                                      stdout=out, stderr=subprocess.STDOUT, timeout=600)
            if done.returncode:
                tail = log.read_text()[-3000:]
                raise AssertionError(f"line {instruction.line}: RUN failed ({done.returncode}):\n{tail}")
    return env
