"""What is new in a failed build: the lines whose template no recent
successful build of the same job has.

A failed build has tens of thousands of lines and nearly all of them are in
every passing build too (service start-up, test progress, the usual
warnings). The few whose *template* (``templates.py``) never appears in a
passing build of the same job are where the failure is; ranked by how loud,
where and how late they are, the first few are what a person reads first —
and what a suggested fingerprint is cut from.

Cost is bounded: the newest ``max_file_lines`` lines of each of a build's
log files are read (the end of a log is where it failed; per file, so the
console log's end does not push a service log's exception out), at most
``baseline_builds`` passing builds are compared against, and each build's
template set is kept in the stored results so a passing build is read once
however many failures it explains.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

from .build_lines import FileLines, newest_lines
from .config import ExplainSettings
from .errors import RecheckError
from .lucene import quote
from .results import ResultStore, StoredBuild
from .search import ALL_TIME, Hit, SearchBackend, TimeWindow, from_epoch_micros
from .templates import TEMPLATE_VERSION, Template, has_words, template_key, template_texts

SUCCESS = "SUCCESS"
LOUD_LEVELS = {"CRITICAL": 3.0, "FATAL": 3.0, "ERROR": 3.0, "TRACE": 2.5, "WARNING": 1.0, "WARN": 1.0}
ERROR_WORDS = frozenset({"error", "errors", "exception", "traceback", "failed", "failure", "fatal", "timeout",
                         "timed", "refused", "unable", "cannot", "killed", "denied", "oom"})
EXCERPT_CHARS = 300
CAPPED_FILES_NAMED = 10  # in the note saying which files were read in part
RARITY_WEIGHT = 3.0  # a line few failures of other causes print is worth this much more than one all print


@dataclass(frozen=True)
class ExplainLimits:
    """How much one explanation may read. The defaults cover a tempest
    job's logs (its files rarely pass 20k lines; a long job's last 20k of
    each) against five passing builds."""

    max_file_lines: int = 20_000
    baseline_builds: int = 5
    min_same_job: int = 2  # fewer passing builds of the job than this: passing builds of any job fill in
    top: int = 10
    keep_new: int = 100  # new templates kept per build (the best-scored), for grouping and the stored copy
    failure_sample: int = 10  # failures known fingerprints explain, read to tell what every failure prints

    @classmethod
    def from_settings(cls, settings: ExplainSettings, **changes: Any) -> "ExplainLimits":
        return cls(max_file_lines=settings.max_file_lines, baseline_builds=settings.baseline_builds, **changes)


@dataclass(frozen=True)
class BuildInfo:
    uuid: str
    job: str = ""
    status: str = ""
    voting: bool = True
    pipeline: str = ""
    project: str = ""
    change: str = ""
    patchset: str = ""
    log_url: str = ""
    newest: dt.datetime | None = None

    @classmethod
    def from_stored(cls, build: StoredBuild) -> "BuildInfo":
        newest = None if build.newest is None else dt.datetime.fromtimestamp(build.newest / 1e6, dt.timezone.utc)
        return cls(build.uuid, build.job, build.status, build.voting, build.pipeline, build.project, build.change,
                   build.patchset, build.log_url, newest)

    @classmethod
    def from_hit(cls, uuid: str, hit: Hit) -> "BuildInfo":
        src = hit.source
        voting = str(_first(src.get("voting")) or "1") not in ("0", "false", "False")
        log_url = str(_first(src.get("log_url")) or "")
        name = str(_first(src.get("filename")) or "")
        if name and log_url.endswith("/" + name):
            log_url = log_url[: -len(name) - 1]
        return cls(uuid, str(_first(src.get("build_name")) or ""), str(_first(src.get("build_status")) or ""),
                   voting, str(_first(src.get("build_queue")) or ""), str(_first(src.get("project")) or ""),
                   str(_first(src.get("build_change")) or ""), str(_first(src.get("build_patchset")) or ""),
                   log_url, hit.timestamp)


@dataclass(frozen=True)
class NewLine:
    """One template new in the build, shown by its newest line."""

    template: Template
    message: str
    filename: str
    level: str
    timestamp: dt.datetime | None
    occurrences: int  # lines of this template in the build (of those read)
    base_score: float  # how loud, where and when (see _new_line)
    file_url: str
    common: float = 0.0  # share of the sampled failures of other causes that print it too

    @property
    def score(self) -> float:
        return self.base_score + RARITY_WEIGHT * (1.0 - self.common)

    @property
    def link(self) -> str:
        """The log file, scrolled to the line where the browser supports text fragments."""
        return line_link(self.file_url, self.message)

    def as_json(self) -> dict[str, Any]:
        return {"template": self.template.text, "message": self.message, "filename": self.filename,
                "level": self.level, "timestamp": self.timestamp.isoformat() if self.timestamp else None,
                "occurrences": self.occurrences, "score": round(self.score, 3), "link": self.link}

    def stored(self) -> list[Any]:
        return [self.template.text, self.message, self.filename, self.level,
                self.timestamp.isoformat() if self.timestamp else None, self.occurrences, self.base_score,
                self.file_url]

    @classmethod
    def from_stored(cls, row: list[Any]) -> "NewLine":
        text, message, filename, level, stamp, occurrences, base, url = row
        return cls(Template(text), message, filename, level, dt.datetime.fromisoformat(stamp) if stamp else None,
                   int(occurrences), float(base), url)


@dataclass
class Explanation:
    build: BuildInfo
    lines: list[NewLine]  # ranked, best first, at most ``limits.top``
    new_templates: dict[int, NewLine]  # the best ``keep_new`` new templates (by key), for grouping
    new_count: int  # new templates in all
    lines_read: int
    lines_total: int | None
    baseline: list[str]  # uuids of the passing builds compared against
    baseline_scope: str  # "job", "any job" (too few of the job) or "none"
    notes: list[str] = field(default_factory=list)
    # (file, lines read, lines) of each file read in part (max_file_lines)
    capped_files: list[tuple[str, int, int]] = field(default_factory=list)

    @property
    def truncated(self) -> bool:
        return self.lines_total is not None and self.lines_total > self.lines_read

    def as_json(self) -> dict[str, Any]:
        return {
            "build": self.build.uuid, "job": self.build.job, "status": self.build.status,
            "change": self.build.change, "patchset": self.build.patchset, "project": self.build.project,
            "lines_read": self.lines_read, "lines_total": self.lines_total, "new_templates": self.new_count,
            "baseline": self.baseline, "baseline_scope": self.baseline_scope, "notes": self.notes,
            "capped_files": [{"file": name, "lines_read": read, "lines_total": total}
                             for name, read, total in self.capped_files],
            "lines": [line.as_json() for line in self.lines],
        }


class Explainer:
    """Explanations over one backend and stored results, sharing the
    template sets of the passing builds between explanations."""

    def __init__(self, backend: SearchBackend, results: ResultStore | None, limits: ExplainLimits = ExplainLimits(),
                 window: TimeWindow = ALL_TIME, stored: Sequence[StoredBuild] | None = None) -> None:
        """``stored``: the window's stored builds, newest first, when the caller has read them already."""
        self.backend = backend
        self.results = results
        self.limits = limits
        self.window = window
        self._stored: list[StoredBuild] | None = None if stored is None else list(stored)
        self._template_sets: dict[str, frozenset[int]] = {}
        self._passing: list[BuildInfo] | None = None
        self._boilerplate: dict[int, float] | None = None

    def explain(self, uuid: str) -> Explanation:
        stored = self.results.build(uuid) if self.results is not None else None
        if stored is not None:
            build = BuildInfo.from_stored(stored)
        else:
            first = self.backend.search(_build_query(uuid), size=1).hits
            if not first:
                raise RecheckError(f"build {uuid}: no such build in the index")
            build = BuildInfo.from_hit(uuid, first[0])
        found = self._kept(build)
        if found is None:
            found = self._read(build)
            if self.results is not None and found.baseline_scope == "job":
                # A build's logs never change; its passing builds of the job
                # were there. Kept, it is not read again on the next run.
                self.results.store_explanation(uuid, self._recipe(), json.dumps(_stored(found)))
        boilerplate = self.boilerplate()
        candidates = {key: replace(line, common=boilerplate.get(key, 0.0))
                      for key, line in found.new_templates.items()}
        found.new_templates = candidates
        found.lines = sorted(candidates.values(), key=lambda line: -line.score)[: self.limits.top]
        return found

    def _recipe(self) -> str:
        return f"{TEMPLATE_VERSION}:{self.limits.max_file_lines}:{self.limits.baseline_builds}:{self.limits.keep_new}"

    def _kept(self, build: BuildInfo) -> Explanation | None:
        if self.results is None:
            return None
        body = self.results.explanation(build.uuid, self._recipe())
        if body is None:
            return None
        try:
            data = json.loads(body)
            lines = [NewLine.from_stored(row) for row in data["new"]]
            return Explanation(build, [], {line.template.key: line for line in lines}, int(data["new_count"]),
                               int(data["lines_read"]), data["lines_total"], list(data["baseline"]),
                               str(data["scope"]), list(data["notes"]),
                               [(str(name), int(read), int(total)) for name, read, total in data["capped"]])
        except (ValueError, KeyError, TypeError):  # a damaged copy: read the build again
            return None

    def _read(self, build: BuildInfo) -> Explanation:
        files = newest_lines(self.backend, build.uuid, self.limits.max_file_lines)
        read = sum(len(f.messages) for f in files)
        total = sum(f.total for f in files)
        baseline, scope = self._baseline(build)
        known: set[int] = set()
        for other in baseline:
            known |= self.template_set(other.uuid)
        new = _new_lines(files, known)
        best = sorted(new.values(), key=lambda line: -line.base_score)[: self.limits.keep_new]
        notes = []
        if scope == "none":
            notes.append("no passing build to compare with in the window: every template counts as new")
        elif scope == "any job":
            notes.append(f"fewer than {self.limits.min_same_job} passing builds of {build.job or 'this job'}: "
                         "passing builds of other jobs filled in")
        capped = [(f.filename, len(f.messages), f.total) for f in files if f.capped]
        if capped:
            named = ", ".join(f"{name or '(no file name)'} ({total:,})"
                              for name, _, total in capped[:CAPPED_FILES_NAMED])
            more = f" and {len(capped) - CAPPED_FILES_NAMED} more" if len(capped) > CAPPED_FILES_NAMED else ""
            notes.append(f"read the newest {self.limits.max_file_lines:,} lines of each file (explain "
                         f"max_file_lines), {read:,} of {total:,} in all; read in part: {named}{more}")
        return Explanation(build, [], {line.template.key: line for line in best}, len(new), read, total,
                           [b.uuid for b in baseline], scope, notes, capped)

    def template_set(self, uuid: str) -> frozenset[int]:
        """The templates of the newest ``max_file_lines`` lines of each of a
        build's files, from the stored results when they were computed before."""
        found = self._template_sets.get(uuid)
        if found is not None:
            return found
        if self.results is not None:
            found = self.results.templates(uuid, self.limits.max_file_lines, TEMPLATE_VERSION)
        if found is None:
            found = _template_set(newest_lines(self.backend, uuid, self.limits.max_file_lines, fields=False))
            if self.results is not None:
                self.results.store_templates(uuid, self.limits.max_file_lines, TEMPLATE_VERSION, found)
        self._template_sets[uuid] = found
        return found

    def boilerplate(self) -> dict[int, float]:
        """Of the failures known fingerprints explain (a sample of the
        newest), the share that prints each template. What nearly every
        failure prints ("Build FAILURE", a summary with a failed count) is
        new against passing builds yet tells nothing of *this* failure;
        failures of other causes show which lines those are."""
        if self._boilerplate is None:
            sample: list[str] = []
            if self.results is not None:
                sample = [b.uuid for b in self.stored_builds() if b.failed and b.matches][: self.limits.failure_sample]
            counts: Counter[int] = Counter()
            read = 0
            for uuid in sample:
                try:
                    counts.update(self.template_set(uuid))
                except RecheckError:  # an unreadable sample build leaves the sample smaller
                    continue
                read += 1
            self._boilerplate = {key: n / read for key, n in counts.items()} if read else {}
        return self._boilerplate

    def stored_builds(self) -> Sequence[StoredBuild]:
        """The window's stored builds, newest first, read once: ``suggest``'s
        clusters and backtest totals take them from here too."""
        if self._stored is None:
            self._stored = list(self.results.builds(self.window.start, self.window.end)) if self.results else []
        return self._stored

    def passing_builds(self) -> list[BuildInfo]:
        """Passing builds in the window, newest first."""
        if self._passing is None:
            if self.results is not None and self.results.count():
                self._passing = [BuildInfo.from_stored(b) for b in self.stored_builds() if b.status == SUCCESS]
            else:
                found = self.backend.builds(f"build_status:{SUCCESS}", self.window)
                found.sort(key=lambda b: _newest(b.last_hit), reverse=True)
                self._passing = [BuildInfo(b.build_uuid, b.build_name, b.build_status, b.voting not in ("0", "false"),
                                           b.build_queue, b.project, b.build_change, b.build_patchset, b.log_url,
                                           b.last_hit) for b in found]
        return self._passing

    def _baseline(self, build: BuildInfo) -> tuple[list[BuildInfo], str]:
        """The passing builds nearest in time to ``build``: what the job's
        logs looked like when it failed."""
        at = build.newest
        passing = [b for b in self.passing_builds() if b.uuid != build.uuid]
        if at is not None:
            passing.sort(key=lambda b: abs((_newest(b) - at).total_seconds()))
        same = [b for b in passing if b.job == build.job][: self.limits.baseline_builds]
        if len(same) >= self.limits.min_same_job:
            return same, "job"
        others = [b for b in passing if b.job != build.job]
        chosen = same + others[: self.limits.baseline_builds - len(same)]
        return chosen, ("any job" if chosen else "none")



def _template_set(files: Sequence[FileLines]) -> frozenset[int]:
    # A build prints a few thousand templates in its many thousand lines:
    # each distinct one is hashed once.
    texts: set[str] = set()
    for lines in files:
        texts.update(template_texts(lines.messages))
    return frozenset(template_key(text) for text in texts)


def _stored(found: Explanation) -> dict[str, Any]:
    return {"new": [line.stored() for line in found.new_templates.values()], "new_count": found.new_count,
            "lines_read": found.lines_read, "lines_total": found.lines_total, "baseline": found.baseline,
            "scope": found.baseline_scope, "notes": found.notes, "capped": found.capped_files}


def _newest(value: BuildInfo | dt.datetime | None) -> dt.datetime:
    moment = value.newest if isinstance(value, BuildInfo) else value
    return moment or dt.datetime.min.replace(tzinfo=dt.timezone.utc)


def _build_query(uuid: str) -> str:
    return f"build_uuid:{quote(uuid)}"


def _first(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    return value


def _message(hit: Hit) -> str:
    value = hit.source.get("message")
    return value if isinstance(value, str) else str(_first(value) or "")


_NO_TIME = -(1 << 63)  # a line without a time is older than any


def _new_lines(files: Sequence[FileLines], known: set[int]) -> dict[int, NewLine]:
    """One NewLine per new template: its newest line (the first met of the
    newest, files in name order and each newest first), scored."""
    newest: dict[int, tuple[int, int, int, str]] = {}  # key -> (time, file, line, text)
    counts: Counter[int] = Counter()
    keys: dict[str, int] = {}
    wordless: set[int] = set()
    stamps: list[int] = []
    for number, lines in enumerate(files):
        times = lines.micros
        stamps.extend(at for at in times if at is not None)
        for i, text in enumerate(template_texts(lines.messages)):
            key = keys.get(text)
            if key is None:
                key = keys[text] = template_key(text)
                if not has_words(text):
                    wordless.add(key)
            if key in known:
                continue
            counts[key] += 1
            if key in wordless:
                continue
            at = times[i] if times[i] is not None else _NO_TIME
            held = newest.get(key)
            if held is None or at > held[0]:
                newest[key] = (at, number, i, text)
    start, end = (from_epoch_micros(min(stamps)), from_epoch_micros(max(stamps))) if stamps else (None, None)
    # In the order the lines of every file, newest first, would be met (ties keep their order when ranked).
    order = sorted(newest, key=lambda key: (-newest[key][0], newest[key][1], newest[key][2]))
    return {key: _new_line(Template(text), files[number].hit(i), counts[key], start, end)
            for key in order for _, number, i, text in [newest[key]]}


def _new_line(template: Template, hit: Hit, occurrences: int, start: dt.datetime | None,
              end: dt.datetime | None) -> NewLine:
    """Scored by how loud the line is (its level, error words), where (the
    console log) and when (near the end of the job, where it failed), and how
    rare in the build (printed once); how rare across failures of other
    causes is added by the Explainer (``NewLine.common``)."""
    src = hit.source
    message = _message(hit)
    level = str(_first(src.get("loglevel")) or "")
    tags = src.get("tags") or []
    tags = tags if isinstance(tags, list) else [tags]
    filename = str(_first(src.get("filename")) or "")
    score = LOUD_LEVELS.get(level.upper(), 0.0)
    words = {token for token in template.tokens if token}
    if words & ERROR_WORDS:
        score += 1.5
    if "console" in tags:
        score += 1.0
    if start is not None and end is not None and hit.timestamp is not None and end > start:
        score += 1.5 * (hit.timestamp - start) / (end - start)
    elif hit.timestamp is not None:
        score += 1.5
    score += 1.0 / occurrences  # a line printed once says more than one printed a thousand times
    score += min(template.constant_tokens, 12) / 12  # "ERROR" alone says less than a sentence
    return NewLine(template, message[:EXCERPT_CHARS], filename, level, hit.timestamp, occurrences, score,
                   str(_first(src.get("log_url")) or ""))


def line_link(file_url: str, message: str) -> str:
    """The file's URL with a text fragment (``#:~:text=``) that scrolls a
    browser to the line and highlights it; the file alone where it has none."""
    if not file_url:
        return ""
    excerpt = " ".join(message.split())[:80].strip()
    if not excerpt:
        return file_url
    return f"{file_url.split('#', 1)[0]}#:~:text={urllib.parse.quote(excerpt, safe='')}"
