"""Installed without a C compiler, elastic-recheck works and answers the
same: each C extension has a pure-Python twin, used (and said once) where
the extension was not built.

The package is copied without its compiled modules, as ``pip install .``
leaves it on a machine with no ``gcc`` (the extensions are optional), and
the same commands run on both copies over the same example builds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import elastic_recheck

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(elastic_recheck.__file__).resolve().parent  # the checkout, or where tox installed it
NATIVE = ("_tokens", "_logline", "_percolate", "_templates")
SCRIPT = """
import json, sys
# The checkout is installed in editable mode, whose import hook would find
# it before PYTHONPATH: this process must import the copy it is given.
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
import elastic_recheck
assert elastic_recheck.__file__.startswith(sys.argv[4]), elastic_recheck.__file__
from elastic_recheck.cli import cli
from click.testing import CliRunner

data, builds, queries = sys.argv[1:4]
runner = CliRunner()
out = {}
ingest = runner.invoke(cli, ["--data-dir", data, "ingest", "--builds", builds], env={"ER_WATCH_QUERIES": queries})
out["ingest"] = ingest.exit_code
said = ingest.output  # what the CLI logged, the percolator's warning among it (it is imported on first use)
for query in ['message:"Hash Sum mismatch"', 'tags:console', 'message:error', 'loglevel:ERROR']:
    found = runner.invoke(cli, ["--data-dir", data, "query", "--days", "0", "-e", query])
    out[query] = found.output.splitlines()[0] if found.output else found.exit_code
listed = runner.invoke(cli, ["--data-dir", data, "uncategorized", "--days", "0", "--queries", queries, "--json"])
out["uncategorized"] = listed.output
import elastic_recheck._tokens as _t  # noqa: F401  (fails where the extension is not built)
"""


def _run(package_root: Path, data: Path) -> tuple[dict, str]:
    env = {**os.environ, "PYTHONPATH": str(package_root)}
    script = SCRIPT.replace("import elastic_recheck._tokens as _t  # noqa: F401  (fails where the extension is "
                            "not built)\n", "")
    script += "print(json.dumps(out))\nprint(said, file=sys.stderr)\n"
    done = subprocess.run([sys.executable, "-c", script, str(data), str(ROOT / "examples" / "builds"),
                           str(ROOT / "queries"), str(package_root)], env=env, capture_output=True, text=True,
                          timeout=300, cwd=package_root)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1]), done.stderr


def test_without_the_c_extensions_the_same_answers_and_one_warning_each(tmp_path):
    plain = tmp_path / "plain"
    shutil.copytree(PACKAGE, plain / "elastic_recheck",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__", "*.c"))
    native = tmp_path / "native"
    shutil.copytree(PACKAGE, native / "elastic_recheck", ignore=shutil.ignore_patterns("__pycache__"))
    assert list((native / "elastic_recheck").glob("_tokens*.so")), "the native copy has its extensions"
    with_c, quiet = _run(native, tmp_path / "data-native")
    without_c, said = _run(plain, tmp_path / "data-plain")
    assert with_c["ingest"] == 0 and with_c == without_c
    assert json.loads(with_c["uncategorized"].splitlines()[0])["failures"] > 0
    assert "is not built" not in quiet
    for module in NATIVE:
        assert said.count(f"elastic_recheck.{module} is not built") == 1, said
