"""Metrics and ``status`` (the daemon serving them is tested in test_watch.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from elastic_recheck.metrics import Metrics, exposition

BIN = Path(sys.executable).parent


def test_status_without_a_daemon_run_says_so(tmp_path):
    result = subprocess.run([str(BIN / "elastic-recheck"), "status"], capture_output=True, text=True,
                            env={**os.environ, "ER_DATA_DIR": str(tmp_path)}, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "has `watch` run" in result.stderr


def test_latency_buckets_are_cumulative():
    metrics = Metrics()
    for seconds in (0.004, 0.07, 0.07, 3.0, 99.0):
        metrics.observe(seconds)
    text = exposition(metrics.snapshot())
    assert 'elastic_recheck_classification_seconds_bucket{le="0.01"} 1\n' in text
    assert 'elastic_recheck_classification_seconds_bucket{le="0.1"} 3\n' in text
    assert 'elastic_recheck_classification_seconds_bucket{le="5"} 4\n' in text
    assert 'elastic_recheck_classification_seconds_bucket{le="30"} 4\n' in text
    assert 'elastic_recheck_classification_seconds_bucket{le="+Inf"} 5\n' in text
    assert "elastic_recheck_classification_seconds_count 5\n" in text
