"""``python -m build`` makes a source release and, from it, a wheel that holds what
an installed elastic-recheck needs; and a machine without a C compiler still
builds the wheel (pure Python: the C extensions are optional).

The builds run without build isolation (``--no-isolation``): isolation would
fetch setuptools into a fresh environment from the network, and the suite must
run offline; the test extras install ``build`` and a setuptools new enough for
pyproject.toml (>=77). The sources are a copy of what git tracks, as a fresh
clone has them: nothing untracked in a developer's checkout (``bench/data``,
``.demo-data``) can make the release look complete when it is not.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("build", reason="the test extras install build: pip install -e '.[test]'")

ROOT = Path(__file__).resolve().parents[1]
NATIVE = ("_tokens", "_logline", "_percolate", "_templates")
TEMPLATES = sorted(p.name for p in (ROOT / "web").iterdir() if p.suffix in (".html", ".css"))
FINGERPRINTS = sorted(p.name for p in (ROOT / "queries").glob("*.yaml"))

# Building a release takes ~15 s (an sdist, a wheel compiling four C modules, one without a
# compiler): CI runs it after the suite (.ci/run), with the other full-size checks.
pytestmark = pytest.mark.full_scale


def _tracked_copy(destination: Path) -> Path:
    """The checkout's tracked files (a fresh clone's), or the whole tree when it is not a git checkout."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True)
    if listed.returncode == 0 and listed.stdout:
        for name in listed.stdout.decode().split("\0"):
            if name and (ROOT / name).is_file():
                (destination / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, destination / name)
    else:  # an unpacked sdist: everything but what builds and runs leave behind
        shutil.copytree(ROOT, destination, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
            ".venv", ".tox", "build", "dist", "*.egg-info", "__pycache__", "*.so", ".demo-data", ".git"))
    return destination


def _build(source: Path, out: Path, *what: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", *what, "--outdir", str(out), str(source)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _has_compiler() -> bool:
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(compiler) is not None and Path(sysconfig.get_paths()["include"], "Python.h").is_file()


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sdist, and the wheel built from it (``python -m build`` with neither --sdist nor --wheel)."""
    tmp = tmp_path_factory.mktemp("release")
    _build(_tracked_copy(tmp / "source"), tmp / "dist")
    sdist, = (tmp / "dist").glob("*.tar.gz")
    wheel, = (tmp / "dist").glob("*.whl")
    return sdist, wheel


def test_the_sdist_is_a_whole_source_release(release: tuple[Path, Path]) -> None:
    sdist, _ = release
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    for needed in ["pyproject.toml", "README.md", "MANIFEST.in", "bin/demo", "bin/demo-data", "tox.ini",
                   "bindep.txt", "tests/conftest.py", "tests/oracle/LuceneOracle.java", "examples/demo_builds.py",
                   "docs/operating.md", *(f"elastic_recheck/{m}.c" for m in NATIVE),
                   *(f"queries/{f}" for f in FINGERPRINTS), *(f"web/{t}" for t in TEMPLATES)]:
        assert needed in names, f"{sdist.name} lacks {needed}"
    assert not [n for n in names if n.endswith(".so") or "__pycache__" in n], "build products in the sdist"


def test_the_wheel_built_from_the_sdist_holds_the_package_its_extensions_and_its_templates(
        release: tuple[Path, Path]) -> None:
    _, wheel = release
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ["__init__.py", "cli.py", "dashboard/site.py", "search/embedded.py", "ingest/spool.py"]:
        assert f"elastic_recheck/{module}" in names, f"{wheel.name} lacks elastic_recheck/{module}"
    # where dashboard/site.py looks for them when installed: <prefix>/share/elastic-recheck/web
    data = next(n.split("/")[0] for n in names if n.endswith(".data/data/share/elastic-recheck/web/base.html"))
    for template in TEMPLATES:
        assert f"{data}/data/share/elastic-recheck/web/{template}" in names, f"{wheel.name} lacks web/{template}"
    # the example fingerprints are the demo's and the README's, read from a checkout or the
    # sdist: a deployment reads its own (watch.queries), so the wheel does not carry them
    assert not [n for n in names if n.startswith("queries/")]
    built = [m for m in NATIVE if any(n.startswith(f"elastic_recheck/{m}.") and n.endswith(".so") for n in names)]
    if _has_compiler():
        assert built == list(NATIVE), f"a compiler is here, yet {wheel.name} has only {built}"


def test_a_wheel_builds_without_a_c_compiler_pure_python(release: tuple[Path, Path], tmp_path: Path) -> None:
    sdist, _ = release
    with tarfile.open(sdist) as tar:
        # filter="data" (refuse links and paths out of the directory) is in 3.11.4 and later
        tar.extractall(tmp_path / "unpacked", **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    source, = (tmp_path / "unpacked").iterdir()
    done = _build(source, tmp_path / "dist", "--wheel", env={**os.environ, "CC": "/bin/false", "LDSHARED": "/bin/false"})
    wheel, = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "elastic_recheck/cli.py" in names and "elastic_recheck/native.py" in names
    assert any(n.endswith("share/elastic-recheck/web/base.html") for n in names)
    assert not [n for n in names if n.endswith(".so")], "built extensions with CC=/bin/false?"
    # setuptools says why each extension was left out, and the build goes on
    said = done.stdout + done.stderr
    for module in NATIVE:
        assert f"elastic_recheck.{module}" in said, said[-3000:]
