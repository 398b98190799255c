"""Runs tests/oracle/LuceneOracle.java: real Lucene answering queries the way
Elasticsearch's ``query_string`` does over elastic-recheck's index template.

The program is compiled once per test session with ``javac`` against
Debian's Lucene 8 jars (``liblucene8-java``); one JVM answers a whole batch
of queries, since starting one costs about a second.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from elastic_recheck.search import schema as sch

SOURCE = Path(__file__).with_name("LuceneOracle.java")
MAIN_CLASS = "org.apache.lucene.queryparser.classic.LuceneOracle"
JAR_DIR = Path("/usr/share/java")
JARS = ("lucene-core-8.7.0.jar", "lucene-queryparser-8.7.0.jar", "lucene-analyzers-common-8.7.0.jar")
ID_FIELD = "doc_id"  # every corpus document names itself in this (ordinary, extra) field
RUN_TIMEOUT = 300  # seconds for one batch: far above a normal run, so only a hung JVM trips it


def missing_tools() -> str | None:
    """Why the oracle cannot run here, or None."""
    for tool in ("javac", "java"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: openjdk-17-jdk-headless)"
    for jar in JARS:
        if not (JAR_DIR / jar).is_file():
            return f"{JAR_DIR / jar} is missing (Debian: liblucene8-java)"
    return None


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


@dataclass(frozen=True)
class Answer:
    """Lucene's answer to one query: the matching ids, or why it refused."""

    ids: frozenset[str] | None
    error: str | None = None


def text_values(value: Any) -> list[str]:
    """A field's values as the index template's ``text`` field sees them
    (the same strings the embedded index analyses): a null in a list, or an
    empty list, is no value."""
    if isinstance(value, list):
        return [sch.facet_value(v) for v in value if v is not None]
    return [sch.facet_value(value)]


def millis(stamp: str) -> int:
    moment = dt.datetime.fromisoformat(stamp)
    return int(moment.timestamp() * 1000)


class LuceneOracle:
    def __init__(self, classes: Path) -> None:
        self.classes = classes
        self.classpath = ":".join([str(classes), *(str(JAR_DIR / jar) for jar in JARS)])
        self.seconds = 0.0  # wall time spent in the JVM, for the report
        self.queries = 0

    @classmethod
    def build(cls, workdir: Path) -> "LuceneOracle":
        workdir.mkdir(parents=True, exist_ok=True)
        classpath = ":".join(str(JAR_DIR / jar) for jar in JARS)
        subprocess.run(["javac", "-nowarn", "-d", str(workdir), "-cp", classpath, str(SOURCE)],
                       check=True, capture_output=True, timeout=RUN_TIMEOUT)
        return cls(workdir)

    def run(self, docs: Sequence[dict[str, Any]], queries: Iterable[str], now: dt.datetime) -> dict[str, Answer]:
        """Index ``docs`` (each with a unique ``doc_id``) and answer every query."""
        queries = list(dict.fromkeys(queries))
        lines = [f"NOW\t{int(now.timestamp() * 1000)}"]
        fields = {name for doc in docs for name in doc if name != sch.TIMESTAMP_FIELD}
        for name in sorted(fields | set(sch.STANDARD_FIELDS)):
            lines.append(f"FIELD\t{_escape(name)}\ttext")
        for doc in docs:
            lines.append(f"DOC\t{_escape(doc[ID_FIELD])}")
            for name, value in doc.items():
                if name == sch.TIMESTAMP_FIELD:
                    lines.append(f"TS\t{millis(value)}")
                    continue
                for text in text_values(value):
                    lines.append(f"V\t{_escape(name)}\t{_escape(text)}")
            lines.append("END")
        for number, query in enumerate(queries):
            lines.append(f"Q\t{number}\t{_escape(query)}")
        started = dt.datetime.now()
        done = subprocess.run(
            ["java", "-Xss16m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", self.classpath, MAIN_CLASS],
            input="\n".join(lines) + "\n", capture_output=True, text=True, encoding="utf-8", timeout=RUN_TIMEOUT,
        )
        self.seconds += (dt.datetime.now() - started).total_seconds()
        if done.returncode != 0:
            raise RuntimeError(f"the Lucene oracle failed: {done.stderr.strip()[-2000:]}")
        answers: dict[str, Answer] = {}
        for line in done.stdout.splitlines():
            number, status, rest = line.split("\t", 2)
            query = queries[int(number)]
            if status == "OK":
                answers[query] = Answer(frozenset(rest.split()))
            else:
                answers[query] = Answer(None, rest)
        if len(answers) != len(queries):
            raise RuntimeError(f"the Lucene oracle answered {len(answers)} of {len(queries)} queries")
        self.queries += len(queries)
        return answers
