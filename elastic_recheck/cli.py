"""The command line: a thin layer that turns every RecheckError into one line."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import sys
from pathlib import Path
from typing import Any, Callable

import click

from . import __version__
from .config import Settings, load_settings
from .errors import ConfigError, IngestError, RecheckError
from .logformat import configure_logging
from .search import SearchBackend, TimeWindow, open_backend, open_existing_backend


class _Context:
    def __init__(self, debug: bool, config: str | None, data_dir: str | None) -> None:
        self.debug = debug
        self.config = config
        self.data_dir = data_dir

    def settings(self) -> Settings:
        return load_settings(self.config, self.data_dir)

    def backend(self) -> SearchBackend:
        """The index to read: one that is not there is an error (only ingest and watch make one)."""
        return open_existing_backend(self.settings())


def _common_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--config/--data-dir/--debug on every command and on the group."""
    fn = click.option("--debug", is_flag=True, default=None, help="Show tracebacks.")(fn)
    fn = click.option("--data-dir", envvar="ER_DATA_DIR", default=None, type=click.Path(file_okay=False),
                      help="Where the embedded index lives [env ER_DATA_DIR].")(fn)
    fn = click.option("--config", "config", envvar="ER_CONFIG", default=None, type=click.Path(dir_okay=False),
                      help="Config file (YAML) [env ER_CONFIG].")(fn)
    return fn


def _pass_context(fn: Callable[..., Any]) -> Callable[..., Any]:
    @_common_options
    @click.pass_context
    @functools.wraps(fn)
    def wrapper(ctx: click.Context, config: str | None, data_dir: str | None, debug: bool | None,
                **kwargs: Any) -> Any:
        parent: _Context = ctx.find_object(_Context) or _Context(False, None, None)
        here = _Context(
            debug if debug is not None else parent.debug,
            config or parent.config,
            data_dir or parent.data_dir,
        )
        return fn(here, **kwargs)

    return wrapper


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RecheckError as exc:
            _fail(ctx, exc)


def _fail(ctx: click.Context, exc: Exception) -> None:
    debug = "--debug" in sys.argv
    if debug:
        raise exc
    click.echo(f"error: {exc}", err=True)
    ctx.exit(1)


HELP = {"help_option_names": ["-h", "--help"]}


@click.group(cls=_Group, context_settings=HELP)
@click.version_option(__version__)
@_common_options
@click.pass_context
def cli(ctx: click.Context, config: str | None, data_dir: str | None, debug: bool | None) -> None:
    """elastic-recheck: which known bug made this CI build fail?"""
    configure_logging(logging.DEBUG if debug else logging.WARNING, "%(levelname)s %(name)s: %(message)s")
    # The cluster client logs each request and node-pool change; our own messages say what matters.
    logging.getLogger("elastic_transport").setLevel(logging.DEBUG if debug else logging.ERROR)
    ctx.obj = _Context(bool(debug), config, data_dir)


# -- ingest -------------------------------------------------------------------

_METADATA_OPTIONS = (
    "build_name", "build_change", "build_patchset", "build_queue", "build_status",
    "build_branch", "project", "log_url", "build_node", "build_ref",
)


def _progress(label: str) -> Any:
    """A progress bar on a terminal, counting log events: how many there are
    is only known at the end, so the bar shows activity and the count."""
    if sys.stderr.isatty():
        unknown_length = (item for item in ())
        return click.progressbar(unknown_length, label=label, file=sys.stderr, show_pos=True, show_percent=False)
    return None


@cli.command()
@click.option("--docs", "docs_file", type=click.Path(dir_okay=False, allow_dash=True),
              help="Logstash documents: NDJSON or an Elasticsearch search response ('-' for stdin).")
@click.option("--logs", help="The build's log directory: a path or an http(s) URL (a log_url from metadata "
                             "or Zuul must be http(s)).")
@click.option("--builds", "builds_dir", type=click.Path(file_okay=False),
              help="Many builds at once: a directory holding a directory per build (its logs and build.json).")
@click.option("--metadata", type=click.Path(dir_okay=False), help="Build metadata as a JSON file.")
@click.option("--zuul-build", help="Zuul build API URL to read the metadata (and log URL) from.")
@click.option("--build-uuid", help="Build id (with the other --build-* options instead of --metadata).")
@click.option("--build-name")
@click.option("--build-change")
@click.option("--build-patchset")
@click.option("--build-queue")
@click.option("--build-status")
@click.option("--build-branch")
@click.option("--project")
@click.option("--voting/--non-voting", default=None)
@click.option("--log-url", help="Base URL of the build's logs, for the log_url field.")
@click.option("--build-node")
@click.option("--build-ref")
@click.option("--keep-debug", is_flag=True, help="Keep DEBUG lines (dropped by default).")
@_pass_context
def ingest(ctx: _Context, docs_file: str | None, logs: str | None, builds_dir: str | None, metadata: str | None,
           zuul_build: str | None, keep_debug: bool, voting: bool | None, build_uuid: str | None,
           **options: str | None) -> None:
    """Index CI logs: one build's log directory, many builds (--builds), or exported documents (--docs)."""
    from .ingest import IngestReport, ingest_documents, list_build_dirs
    from .ingest.sources import HttpRetry, fetch_zuul_build, load_metadata_file, metadata_from_mapping, require_http
    from .pipeline import LogsReady, index_builds
    from .results import ResultStore

    settings = ctx.settings()
    limits = settings.ingest
    # The daemon holds the index's one writer for a batch at a time: this waits its turn.
    backend = open_backend(settings, writer_wait=INGEST_WRITER_WAIT)

    def index(items: Any, label: str) -> IngestReport:
        fingerprints = _ingest_fingerprints(settings, backend)
        bar = _progress(label)
        report = index_builds(backend, settings.results_db, fingerprints, items, limits, keep_debug=keep_debug,
                              window_days=settings.dashboard.days, progress=bar.update if bar else None)
        if bar:
            bar.render_finish()
        return report

    if builds_dir:
        if docs_file or logs or metadata or zuul_build or build_uuid:
            raise click.UsageError("--builds takes each build's metadata from its build.json; give it alone")
        listed = IngestReport()
        build_dirs = list_build_dirs(Path(builds_dir), listed)
        items = []
        for build_dir in build_dirs:
            try:
                items.append(LogsReady(load_metadata_file(str(build_dir / "build.json")), str(build_dir)))
            except IngestError as exc:
                listed.errors.append(exc)
        report = index(items, f"indexing the builds in {builds_dir}")
        report.errors[:0] = listed.errors
        report.warnings[:0] = listed.warnings
        _finish_report(report, f"{report.builds} builds: {report.documents} log events from {report.files} files "
                               f"indexed ({report.skipped_debug} DEBUG lines dropped)")
        return
    if docs_file:
        if logs or metadata or zuul_build:
            raise click.UsageError("--docs cannot be combined with a build's --logs/--metadata/--zuul-build")
        bar = _progress("indexing documents")
        handle = sys.stdin if docs_file == "-" else _open_text(docs_file)
        with handle:
            report = ingest_documents(backend, handle, docs_file, progress=bar.update if bar else None)
        if bar:
            bar.render_finish()
        # Classified as they were: a build these documents were added to is classified again, whole.
        store = ResultStore.open_existing(settings.results_db) if report.build_uuids else None
        if store is not None:
            with contextlib.closing(store):
                forgotten = store.forget_builds(report.build_uuids)
            if forgotten:
                click.echo(f"{forgotten} build{'' if forgotten == 1 else 's'} had stored results from before these "
                           "documents: classified again by the next dashboard or uncategorized run",
                           err=True)
        _finish_report(report, f"{report.documents} documents indexed from {docs_file}")
        return
    fields: dict[str, Any] = {}
    if zuul_build:
        fields.update(fetch_zuul_build(zuul_build, HttpRetry(), limits).fields())
    if metadata:
        fields.update(load_metadata_file(metadata).fields())
    if build_uuid:
        fields["build_uuid"] = build_uuid
    fields.update({name: value for name, value in options.items() if value is not None})
    if voting is not None:
        fields["voting"] = "1" if voting else "0"
    if not fields.get("build_uuid"):
        raise click.UsageError("say which build: --metadata FILE, --zuul-build URL or --build-uuid ID (or use --docs)")
    origin = metadata or zuul_build or "options"
    build = metadata_from_mapping(fields, origin)
    if not logs and not build.log_url:
        raise click.UsageError("where are the logs? give --logs (or a log_url in the metadata)")
    # --logs is the operator's own choice (a local directory is fine); a
    # log_url read from metadata or an API answer must be http(s).
    location = logs if logs else require_http(build.log_url, origin)
    report = index([LogsReady(build, location)], f"indexing build {build.build_short_uuid}")
    if not report.builds and report.errors:
        raise report.errors[0]
    _finish_report(report, f"build {build.build_uuid}: {report.documents} log events from {report.files} files "
                           f"indexed ({report.skipped_debug} DEBUG lines dropped)")


# How often the daemon looks at its fingerprint directory for changes.
FINGERPRINT_RECHECK_SECONDS = 1.0
# How long ``ingest`` waits for the index while the daemon (or another ingest)
# writes to it: the daemon lets go after each batch of a few seconds.
INGEST_WRITER_WAIT = 600.0


def _ingest_fingerprints(settings: Settings, backend: SearchBackend) -> list[Any]:
    """The fingerprints builds are classified with as they are indexed: those
    of ``watch.queries``, when that directory exists (bad ones are left out
    here: ``lint`` names them)."""
    from .fingerprints import load_fingerprints

    directory = Path(settings.watch.queries)
    if not directory.is_dir():
        return []
    good, _ = load_fingerprints(directory, backend.check_query, settings.fingerprints)
    return good


def _open_text(path: str) -> Any:
    try:
        return open(path, encoding="utf-8", errors="replace")
    except OSError as exc:
        raise IngestError(path, f"cannot read: {exc.strerror}") from None


def _finish_report(report: Any, summary: str) -> None:
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    for error in report.errors:
        click.echo(f"error: {error}", err=True)
    click.echo(summary)
    if report.errors:
        raise IngestError("ingest", f"{len(report.errors)} input error(s); everything else was indexed")


# -- lint ---------------------------------------------------------------------

@cli.command()
@click.argument("directory", default="queries", type=click.Path())
@click.option("--offline", is_flag=True,
              help="Check field names against the standard logstash fields, without opening the index.")
@click.option("--backtest", "run_backtest", is_flag=True,
              help="Also run each fingerprint over the window; fail when too many of the builds it matches succeeded.")
@click.option("--days", type=float, default=None, callback=lambda c, p, v: _check_days(c, p, v),
              help="With --backtest: the window [default: dashboard.days, 10]; 0 for all time.")
@click.option("--max-success-share", type=float, default=None, callback=lambda c, p, v: _check_share(c, p, v),
              help="With --backtest: the share of a fingerprint's matched builds that may have succeeded "
                   "[default: 0.1].")
@_pass_context
def lint(ctx: _Context, directory: str, offline: bool, run_backtest: bool, days: float | None,
         max_success_share: float | None) -> None:
    """Check every fingerprint in DIRECTORY; non-zero exit on any error.

    Each query is planned exactly as the configured backend will run it (no
    index or cluster needed), so a queries repository can gate on this; with
    --backtest, also on what each fingerprint matches in the indexed builds."""
    from .lint import lint_directory
    from .search import query_checker

    if not run_backtest and (days is not None or max_success_share is not None):
        raise click.UsageError("--days and --max-success-share go with --backtest")
    settings = ctx.settings()
    known, source = _known_fields(settings, offline)
    report = lint_directory(directory, query_checker(settings), settings.fingerprints, known, source)
    for error in report.errors:
        click.echo(f"error: {error}", err=True)
    for warning in report.warnings:
        click.echo(str(warning), err=True)
    click.echo(f"{report.files} fingerprints: {len(report.errors)} errors, {len(report.warnings)} warnings")
    passed = not report.errors
    if run_backtest:
        from .backtest import DEFAULT_MAX_SUCCESS_SHARE

        passed &= _lint_backtest(settings, report.fingerprints, settings.dashboard.days if days is None else days,
                                 DEFAULT_MAX_SUCCESS_SHARE if max_success_share is None else max_success_share)
    if not passed:
        sys.exit(1)


def _check_share(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and not 0 <= value <= 1:  # NaN fails this too
        raise click.BadParameter(f"{value:g} is not a share from 0 to 1 (0.1: a tenth)")
    return value


def _lint_backtest(settings: Settings, fingerprints: list[Any], days: float, max_share: float) -> bool:
    """Each fingerprint's figures over the window, one line each; False when
    one matches successful builds beyond ``max_share`` (each named on stderr)."""
    from .backtest import backtest_fingerprints, percent, summary, totals_line, window_label
    from .results import ResultStore
    from .sanitize import escape_controls

    backend = open_existing_backend(settings)
    results = ResultStore.open_existing(settings.results_db)
    try:
        totals, done, errors = backtest_fingerprints(backend, results, fingerprints, TimeWindow.last_days(days),
                                                     progress=_fingerprint_progress("backtesting"))
    finally:
        backend.close()
        if results is not None:
            results.close()
    if not totals.known:
        raise RecheckError(f"no failed or successful builds in {window_label(days)} to backtest the fingerprints "
                           f"against (totals from the {totals.source})")
    click.echo(totals_line(totals, days))
    for item in done:
        click.echo(f"{escape_controls(str(item.fingerprint.path))}: {summary(item.backtest)}")
    for error in errors:
        click.echo(f"error: {error}", err=True)
    offenders = [item for item in done if item.backtest.exceeds(max_share)]
    for item in offenders:
        result = item.backtest
        click.echo(f"error: {escape_controls(str(item.fingerprint.path))}: {percent(result.success_share)} of the "
                   f"{result.matched_builds:,} builds it matches succeeded ({result.success_hits:,}), more than "
                   f"the {percent(max_share)} allowed (--max-success-share {max_share:g})", err=True)
    click.echo(f"backtest: {len(done)} fingerprints, {len(offenders)} over the allowed success share, "
               f"{sum(1 for item in done if not item.backtest.matched_builds)} without hits, {len(errors)} errors")
    return not offenders and not errors


def _known_fields(settings: Settings, offline: bool) -> tuple[list[str], str]:
    """The fields the index knows, or the standard logstash fields when
    there is no index yet (or it cannot be reached, said in one line)."""
    from .errors import BackendError
    from .search.schema import STANDARD_FIELDS, TIMESTAMP_FIELD

    standard = sorted({*STANDARD_FIELDS, TIMESTAMP_FIELD}), "the standard logstash schema"
    if offline:
        return standard
    if settings.backend == "embedded":
        from .search.embedded import EmbeddedBackend

        if not EmbeddedBackend.exists(settings.index_dir):
            return standard
    try:
        backend = open_backend(settings)
        try:
            names = backend.field_names()
        finally:
            backend.close()
    except BackendError as exc:
        click.echo(f"note: field names checked against the standard logstash schema: {exc}", err=True)
        return standard
    known = set(names) - {TIMESTAMP_FIELD}
    if not known:  # a cluster with no index yet
        return standard
    return sorted(known | {TIMESTAMP_FIELD}), "the index"


# -- query --------------------------------------------------------------------

def _check_days(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """A window in days: 0 (all time) up to a century; NaN, infinities and negative numbers are refused."""
    import math

    from .config import MAX_DAYS

    if value is not None and not (math.isfinite(value) and 0 <= value <= MAX_DAYS):
        raise click.BadParameter(f"{value:g} is not a number of days from 0 (all time) to {MAX_DAYS:g}")
    return value


def _check_regex(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    import re

    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise click.BadParameter(f"{value!r} is not a regular expression: {exc}") from None
    return value


def _query_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for decorator in reversed([
        click.argument("file", required=False, type=click.Path(dir_okay=False)),
        click.option("-e", "--expression", help="A query to run instead of a fingerprint file."),
        click.option("--days", default=10.0, show_default=True, callback=_check_days,
                     help="Time window in days; 0 for all time."),
        click.option("--quantity", default=5, show_default=True, help="Values to show per attribute."),
        click.option("--verbose", is_flag=True, help="Also show the noisy attributes."),
        click.option("--json", "as_json", is_flag=True, help="Print the hits as JSON lines instead."),
        click.option("--limit", default=0, help="With --json: at most this many hits (0: all)."),
    ]):
        fn = decorator(fn)
    return fn


def _run_query(ctx: _Context, file: str | None, expression: str | None, days: float, quantity: int,
               verbose: bool, as_json: bool, limit: int) -> None:
    from .fingerprints import load_fingerprint
    from .lucene import parse
    from .querysummary import summarize

    if bool(file) == bool(expression):
        raise click.UsageError("give a fingerprint FILE or -e 'QUERY' (one of them)")
    settings = ctx.settings()
    fingerprint = load_fingerprint(file, limits=settings.fingerprints) if file else None
    query = fingerprint.query if fingerprint else str(expression)
    parse(query)
    backend = open_existing_backend(settings)
    window = TimeWindow.last_days(days)
    if as_json:
        for number, hit in enumerate(backend.scan(query, window), 1):
            click.echo(json.dumps(hit.source, ensure_ascii=False, sort_keys=True))
            if limit and number >= limit:
                break
        return
    for line in summarize(backend, query, window, quantity=quantity, verbose=verbose).lines():
        click.echo(line)
    _query_backtest(settings, backend, fingerprint, query, window, days)


def _query_backtest(settings: Settings, backend: SearchBackend, fingerprint: Any, query: str, window: TimeWindow,
                    days: float) -> None:
    """The figures ``lint --backtest`` gates on, for this query (a file as the classifier runs it)."""
    from .backtest import backtest, backtest_fingerprint, report_lines
    from .results import ResultStore

    results = ResultStore.open_existing(settings.results_db)
    try:
        found = (backtest_fingerprint(backend, results, fingerprint, window) if fingerprint is not None
                 else backtest(backend, results, query, window))
    finally:
        if results is not None:
            results.close()
    for line in report_lines(found, days):
        click.echo(line)


@cli.command("query")
@_query_options
@_pass_context
def query_command(ctx: _Context, **kwargs: Any) -> None:
    """Show what a fingerprint matches (the same as er-query)."""
    _run_query(ctx, **kwargs)


@click.command("er-query", cls=click.Command, context_settings=HELP)
@click.version_option(__version__)
@_query_options
@_pass_context
def er_query(ctx: _Context, **kwargs: Any) -> None:
    """Show what a fingerprint (FILE) or a query (-e) matches in the indexed logs."""
    _run_query(ctx, **kwargs)


# -- classify -----------------------------------------------------------------

@cli.command()
@click.option("--build", "build_uuid", required=True, help="The build's uuid.")
@click.option("--queries", "queries_dir", default=None, type=click.Path(file_okay=False),
              help="Fingerprint directory [default: watch.queries, or queries].")
@click.option("--change", type=int, default=None, help="With --patchset: print the review comment for this change.")
@click.option("--patchset", type=int, default=None)
@click.option("--job", "job_name", default=None, help="The job's name, for the review comment.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: the build and the bugs it hits.")
@_pass_context
def classify(ctx: _Context, build_uuid: str, queries_dir: str | None, change: int | None, patchset: int | None,
             job_name: str | None, as_json: bool) -> None:
    """Which known bugs does an indexed build hit?"""
    from .classify import Classifier, failed_tests
    from .fingerprints import load_fingerprints

    settings = ctx.settings()
    backend = open_existing_backend(settings)
    fingerprints, bad = load_fingerprints(queries_dir or settings.watch.queries, backend.check_query,
                                          settings.fingerprints)
    for error in bad:
        click.echo(f"warning: skipped {error}", err=True)
    tests = failed_tests(backend, build_uuid) if any(fp.test_ids for fp in fingerprints) else None
    matches = Classifier(backend, fingerprints).classify(build_uuid, tests)
    if change is not None:
        if patchset is None:
            raise click.UsageError("--change needs --patchset")
        import datetime as dt

        from .gerrit_events import FailedJob, FailureReport
        from .reporting import JobResult, Review, render_review

        job = FailedJob(job_name or build_uuid, "", "", build_uuid=build_uuid)
        report = FailureReport(change, patchset, "", "", "", "", dt.datetime.now(dt.timezone.utc), (job,))
        # The comment names only the bugs that may be announced; the build is explained all the same.
        review = Review(report, [JobResult.from_matches(job, build_uuid, matches)])
        if not review.worth_commenting(settings.watch.comment_unrecognized):
            silent = ", ".join(fp.bug for fp in matches)
            click.echo(f"review {change},{patchset}: none (" + (
                f"explained by bug {silent}, marked suppress-notification" if matches else "no known bug found") + ")")
            return
        click.echo(f"review {change},{patchset}:\n{render_review(review, settings.watch)}")
        return
    if as_json:
        click.echo(json.dumps({"build": build_uuid, "failed_tests": None if tests is None else sorted(tests),
                               "bugs": [{"bug": fp.bug, "title": fp.title, "query": fp.query} for fp in matches]},
                              ensure_ascii=False))
        return
    if not matches:
        click.echo(f"build {build_uuid}: no known bug found")
    for fingerprint in matches:
        title = f" ({fingerprint.title})" if fingerprint.title else ""
        click.echo(f"build {build_uuid}: bug {fingerprint.bug}{title}")


def _since(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """A date or time (``2026-11-01``, ``2026-11-01T10:00``), in UTC unless it says otherwise."""
    import datetime as dt

    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2026-11-01 or 2026-11-01T10:00") from None
    return moment.replace(tzinfo=dt.timezone.utc) if moment.tzinfo is None else moment


@cli.command()
@click.option("--queries", "queries_dir", default=None, type=click.Path(file_okay=False),
              help="Fingerprint directory, reloaded when its files change [default: watch.queries].")
@click.option("--events", "events_file", default=None, type=click.Path(exists=True, dir_okay=False, allow_dash=True),
              help="Replay recorded events from FILE (- for stdin) instead of Gerrit's stream; exit when done.")
@click.option("--dry-run", is_flag=True, help="Post nothing; print each review it would post.")
@click.option("--since", callback=_since, default=None,
              help="With zuul.api: also fetch the builds that started since this date (a backfill), e.g. 2026-11-01.")
@_pass_context
def watch(ctx: _Context, queries_dir: str | None, events_file: str | None, dry_run: bool, since: Any) -> None:
    """The stream listener: comment on failed builds that hit known bugs."""
    import dataclasses
    import queue
    import signal

    from .instance_lock import InstanceLock
    from .irc_bot import IRCBot
    from .reporting import PrintingReviewer, RESTReviewer
    from .state import StateDB
    from .watch import Daemon, FingerprintSet, replay

    configure_logging(logging.DEBUG if ctx.debug else logging.INFO, "%(asctime)s %(levelname)s %(name)s: %(message)s",
                      force=True)
    logging.getLogger("paramiko").setLevel(logging.WARNING)
    settings = ctx.settings()
    if queries_dir:
        settings = dataclasses.replace(settings, watch=dataclasses.replace(settings.watch, queries=queries_dir))
    if dry_run:
        reviewer: Any = PrintingReviewer(sys.stdout)
    elif settings.gerrit.rest_url:
        reviewer = RESTReviewer(settings.gerrit)
    else:
        from .gerrit_ssh import SSHReviewer

        reviewer = SSHReviewer(settings.gerrit)
    stream = None
    if not events_file:
        from .gerrit_ssh import EventStream

        events: queue.Queue[Any] = queue.Queue()
        stream = EventStream(settings.gerrit, events, backoff_max=settings.watch.retry_max)
        stream.preflight()  # a known_hosts or key file that cannot work: one line and a non-zero exit, now
    else:
        events = queue.Queue()
    if settings.ingest.fetch and not settings.ingest.log_hosts:
        raise ConfigError("ingest.log_hosts is empty: name the hosts the daemon may fetch build logs from "
                          "(ER_INGEST_LOG_HOSTS), or set ingest.fetch: false when another pipeline feeds the index")
    lock = InstanceLock(settings.data_dir / "watch.lock").acquire()
    notifier, rules = _irc_notifier(settings, dry_run)
    state = StateDB(settings.state_db)
    # The daemon's writer waits its turn while an operator's ingest holds the index.
    backend = open_backend(settings, writer_wait=settings.watch.retry_max)
    fingerprints = FingerprintSet(settings.watch.queries, backend.check_query, settings.fingerprints,
                                  recheck_every=FINGERPRINT_RECHECK_SECONDS)
    fingerprints.current()  # fail now on an unreadable directory
    builds = results = pipeline = None
    if settings.ingest.fetch:
        from .build_queue import BuildQueue, fetch_with_zuul
        from .pipeline import IndexPipeline
        from .results import ResultStore

        results = ResultStore(settings.results_db)
        pipeline = IndexPipeline(backend, settings.results_db, fingerprints.current, settings.ingest,
                                 window_days=settings.dashboard.days, retention_days=settings.retention.days)
        builds = BuildQueue(state, pipeline, settings.ingest, settings.spool_dir, settings.watch.log_timeout,
                            fetch_one=fetch_with_zuul(settings))
        pipeline.done = builds.writer_done
        pipeline.start()
    daemon = Daemon(settings, backend, state, reviewer, fingerprints, notifier=notifier, channels=rules,
                    builds=builds, results=results)
    from .build_sources import configured_sources

    sources = configured_sources(settings, events, since) if builds is not None else []
    if since is not None and not sources:
        raise click.UsageError("--since backfills from Zuul's builds API: set zuul.api (and ingest.fetch)")
    signal.signal(signal.SIGTERM, lambda *_: daemon.stop())
    signal.signal(signal.SIGINT, lambda *_: daemon.stop())
    metrics_server = None
    if settings.watch.metrics_port:
        from .metrics import MetricsServer

        metrics_server = MetricsServer(daemon.counters, settings.watch.metrics_address, settings.watch.metrics_port,
                                       max_connections=settings.watch.metrics_connections,
                                       timeout=settings.watch.metrics_timeout,
                                       max_request_bytes=settings.watch.metrics_request_bytes).start()
    if stream is None:
        replay(str(events_file), events)
    else:
        stream.start()
    for source in sources:
        source.start()
    try:
        daemon.run(events, exit_when_exhausted=bool(events_file),
                   sources_done=lambda: all(source.polled.is_set() for source in sources))
    finally:
        if stream is not None:
            stream.stop()
        for source in sources:
            source.stop()
        if builds is not None:
            builds.close()
        if pipeline is not None:
            pipeline.stop()
        if isinstance(notifier, IRCBot):
            _stop_bot(notifier)
        if metrics_server is not None:
            metrics_server.stop()
        state.close()
        lock.release()
        counts = ", ".join(f"{k} {v:g}" for k, v in daemon.counters.snapshot().items() if "seconds" not in k)
        logging.getLogger("elastic_recheck.watch").info("stopped: %s", counts)


@cli.command()
@click.option("--prometheus", is_flag=True, help="Print the Prometheus text format instead.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
@_pass_context
def status(ctx: _Context, prometheus: bool, as_json: bool) -> None:
    """What the watch daemon has done, from its state database."""
    import datetime as dt

    from .metrics import exposition, summary_lines
    from .sanitize import strip_controls
    from .state import BUILD_STATUSES, StateDB

    settings = ctx.settings()
    if not settings.state_db.exists():
        raise ConfigError(f"{settings.state_db}: no state database yet (has `watch` run with this data dir?)")
    state = StateDB(settings.state_db, recover=False)  # the daemon may be running
    try:
        values = state.metrics()
        values["queue_depth"] = state.pending_count()
        last = state.last_received()
        parked = state.parked()
        builds = state.build_counts()
    finally:
        state.close()
    for status_name in BUILD_STATUSES:
        values[f"builds_{status_name}"] = builds.get(status_name, 0)
    if prometheus:
        click.echo(exposition(values), nl=False)
        return
    if as_json:
        click.echo(json.dumps({"metrics": values, "last_report_received": last,
                               "parked": [{"event": key, "why": why} for key, why in parked]}, ensure_ascii=False))
        return
    for line in summary_lines(values):
        click.echo(line)
    seen = dt.datetime.fromtimestamp(last, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if last else "never"
    click.echo(f"last failure report received: {seen}")
    if parked:
        click.echo(f"parked events (failed unexpectedly, not retried): {len(parked)}")
        for key, why in parked[-10:]:
            click.echo(strip_controls(f"  {key}: {why}"))


@cli.command()
@click.option("--days", type=float, default=None, callback=_check_days,
              help="Keep the builds of this many days [default: retention.days, 30].")
@click.option("--dry-run", is_flag=True, help="Count what would go; change nothing.")
@_pass_context
def prune(ctx: _Context, days: float | None, dry_run: bool) -> None:
    """Drop builds older than the retention window: their lines from the embedded index, their stored
    results, the finished events of their age. The daemon does this hourly; this is for disk space now,
    or for a data directory no daemon runs on. While the daemon runs, waits its turn for the index."""
    from .retention import Pruning, cutoff, prune_index_and_results
    from .results import ResultStore
    from .search.embedded import EmbeddedBackend
    from .state import StateDB

    settings = ctx.settings()
    days = settings.retention.days if days is None else days
    before = cutoff(days)
    if before is None:
        raise click.UsageError("nothing to prune: 0 days (retention.days, or --days) means everything is kept")
    if days < 2 * settings.dashboard.days:
        click.echo(f"warning: --days {days:g} is shorter than twice dashboard.days ({settings.dashboard.days:g}): "
                   "the trend pages will miss the builds pruned", err=True)
    indexed = settings.backend != "embedded" or EmbeddedBackend.exists(settings.index_dir)
    backend = open_backend(settings, writer_wait=INGEST_WRITER_WAIT) if indexed else None
    results = ResultStore.open_existing(settings.results_db)
    try:
        found = prune_index_and_results(backend, results, before, dry_run)
    finally:
        if results is not None:
            results.close()
    events = queued = 0
    if settings.state_db.exists():
        state = StateDB(settings.state_db, recover=False)  # the daemon may be running
        try:
            events, queued = state.prune(before, dry_run)
        finally:
            state.close()
    click.echo(Pruning(before, found.index, found.results, events, queued).summary(dry_run))
    if backend is not None and found.index is None:
        click.echo(f"the {settings.backend} cluster's day indices are left to its own lifecycle policy "
                   "(ILM, ISM or curator)")


@cli.command()
@click.option("--zuul-api", "api", default=None,
              help="A tenant's builds API, e.g. https://zuul.example.org/api/tenant/openstack [default: zuul.api].")
@click.option("--since", callback=_since, default=None,
              help="Every finished build that started since this date (UTC), oldest first.")
@click.option("--limit", type=click.IntRange(min=0), default=None,
              help="At most this many, the newest [default: 20 without --since, all with it; 0: all].")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line, in the project's build model.")
@_pass_context
def builds(ctx: _Context, api: str | None, since: Any, limit: int | None, as_json: bool) -> None:
    """List the builds the Zuul source reads (read-only: the daemon's checkpoint is not touched)."""
    import datetime as dt

    from .build_sources.zuul import ZuulBuilds
    from .config import ZUUL_CREDENTIALS, check_http_url
    from .ingest.fetch import HttpRetry
    from .sanitize import strip_controls

    settings = ctx.settings()
    zuul = settings.zuul
    api = api or zuul.api
    if not api:
        raise click.UsageError("which Zuul? give --zuul-api URL (or set zuul.api)")
    check_http_url("--zuul-api", api, ZUUL_CREDENTIALS)
    if limit is None:
        limit = 0 if since else 20
    source = ZuulBuilds(api, None, HttpRetry(), settings.ingest, zuul.page_size,
                        since or dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc),
                        pipelines=zuul.pipelines, jobs=zuul.jobs, max_pages=zuul.max_pages,
                        running_timeout=zuul.running_timeout,
                        on_skip=lambda error: click.echo(f"warning: {error}", err=True))
    found = source.peek(limit) if limit else source.poll()
    for build in found:
        if as_json:
            click.echo(json.dumps(build.as_json(), ensure_ascii=False, sort_keys=True))
            continue
        when = f"{build.end:%Y-%m-%d %H:%M:%S}" if build.end else "-"
        change = f"{build.change},{build.patchset}" if build.change else build.ref or "-"
        voting = "" if build.voting else " (non-voting)"
        click.echo(strip_controls(f"{when}  {build.status:<12} {build.job}{voting}  {build.project} {change}  "
                                  f"{build.pipeline or '-'}  {build.uuid}  {build.log_url or '-'}"))
    if not as_json:
        click.echo(f"{len(found)} builds", err=True)


def _irc_notifier(settings: Settings, dry_run: bool) -> tuple[Any, list[Any]]:
    """The IRC bot (started), or with --dry-run a printer; (None, []) when IRC is not configured."""
    from .irc_bot import IRCBot, PrintingNotifier
    from .irc_messages import load_channels

    irc = settings.irc
    if not irc.channels:
        if irc.server:
            raise ConfigError("irc.server is set but irc.channels (the channel config file) is not")
        return None, []
    rules = load_channels(irc.channels)
    if dry_run:
        return PrintingNotifier(sys.stdout, irc.nick), rules
    if not irc.server:
        return None, []
    bot = IRCBot(irc, [rule.channel for rule in rules])
    bot.start()
    return bot, rules


def _stop_bot(bot: Any) -> None:
    """Give queued IRC lines a moment to go out (irc.exit_wait), then stop; what is left is counted."""
    import time

    deadline = time.monotonic() + bot.settings.exit_wait
    while bot.pending and bot.is_alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    bot.stop()
    bot.join(timeout=5)
    if bot.pending or bot.dropped:
        logging.getLogger("elastic_recheck.irc").warning(
            "IRC: %d queued lines not sent at exit, %d dropped while the outbox was full", bot.pending, bot.dropped)


def _interval(text: str | None) -> float | None:
    """``30m``, ``1h``, ``90s``, ``1d`` (a bare number is seconds) as seconds."""
    if text is None:
        return None
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise click.BadParameter(f"{text!r} is not an interval like 30m, 1h or 90s", param_hint="--every")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def _fingerprint_progress(label: str) -> Callable[[Any], Any]:
    def wrap(items: Any) -> Any:
        if not sys.stderr.isatty():
            return items
        items = list(items)

        def run() -> Any:
            with click.progressbar(items, label=label, file=sys.stderr, show_pos=True) as bar:
                yield from bar

        return run()

    return wrap


@cli.command()
@click.option("--output", required=True, type=click.Path(file_okay=False),
              help="Where the site appears: a symbolic link, swapped atomically to each finished copy.")
@click.option("--queries", "queries_dir", default=None, type=click.Path(file_okay=False),
              help="Fingerprint directory [default: watch.queries].")
@click.option("--every", default=None, help="Repeat at this interval (e.g. 30m) until SIGTERM; runs never overlap.")
@_pass_context
def dashboard(ctx: _Context, output: str, queries_dir: str | None, every: str | None) -> None:
    """Render the QA dashboard: bug trends, uncategorized failures, classification rate."""
    import signal
    import threading
    import time

    from .dashboard import build_dashboard
    from .dashboard.publish import Busy, Publisher

    interval = _interval(every)
    settings = ctx.settings()
    publisher = Publisher(output)
    publisher.check()
    backend = ctx.backend()
    if interval is None:
        build_dashboard(settings, backend, queries_dir or settings.watch.queries, publisher,
                        progress=_fingerprint_progress("fingerprints"))
        click.echo(f"dashboard written: open {publisher.output / 'index.html'}")
        return
    configure_logging(logging.DEBUG if ctx.debug else logging.INFO, "%(asctime)s %(levelname)s %(name)s: %(message)s",
                      force=True)
    log = logging.getLogger("elastic_recheck.dashboard")
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    while not stopping.is_set():
        started = time.monotonic()
        try:
            build_dashboard(settings, backend, queries_dir or settings.watch.queries, publisher)
            log.info("dashboard published to %s in %.1fs", publisher.output, time.monotonic() - started)
        except Busy as exc:
            log.warning("run skipped: %s", exc)
        except RecheckError as exc:  # the next run may well succeed
            log.error("dashboard run failed: %s", exc)
        except Exception as exc:  # a bug met by one run must not end the ones after it
            log.error("dashboard run failed: %s: %s", type(exc).__name__, " ".join(str(exc).split())[:500],
                      exc_info=ctx.debug)
        wait = interval - (time.monotonic() - started)
        if wait < 0:
            log.warning("the run took longer than --every %s; starting the next one now", every)
        stopping.wait(max(wait, 0))


@cli.command()
@click.option("--queries", "queries_dir", default=None, type=click.Path(file_okay=False),
              help="Fingerprint directory [default: watch.queries].")
@click.option("--days", type=float, default=None, callback=_check_days,
              help="The window [default: dashboard.days, 10]; 0 for all time.")
@click.option("--job", "job_pattern", default=None, callback=_check_regex,
              help="Only jobs whose name matches this regex.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per line: the window's totals, then each uncategorized build.")
@_pass_context
def uncategorized(ctx: _Context, queries_dir: str | None, days: float | None, job_pattern: str | None,
                  as_json: bool) -> None:
    """Failed voting builds no fingerprint explains, by job, newest first."""
    import re

    from .dashboard import gather
    from .dashboard.trends import trends
    from .sanitize import strip_controls

    settings = _window_settings(ctx.settings(), days)
    collected, header = gather(settings, ctx.backend(), queries_dir or settings.watch.queries,
                               progress=_fingerprint_progress("fingerprints"))
    for bug, error in collected.errors.items():
        click.echo(f"warning: fingerprint {bug} could not run: {error}", err=True)
    result = trends(collected, "all").uncategorized
    if as_json:
        from .dashboard.trends import as_json as plain

        groups = [g for g in result.groups if not job_pattern or re.search(job_pattern, g.job)]
        click.echo(json.dumps({"days": settings.dashboard.days, "failures": result.failures,
                               "uncategorized": result.count,
                               "classification_rate": result.rate if result.failures else None}))
        for group in groups:
            for build in group.uncategorized:
                click.echo(json.dumps({"job": group.job, **plain(build)}, ensure_ascii=False))
        return
    window = f"in {settings.dashboard.days:g} days" if settings.dashboard.days else "in all"
    if not result.failures:
        click.echo(f"no failed voting builds {window}: nothing to classify")
        return
    click.echo(f"{result.failures} failed voting builds {window}, "
               f"{result.count} uncategorized; classification rate {result.rate:.1%}")
    for group in result.groups:
        if not group.uncategorized or (job_pattern and not re.search(job_pattern, group.job)):
            continue
        click.echo()
        click.echo(strip_controls(f"{group.job}: {len(group.uncategorized)} of {group.failures} failures "
                                  f"uncategorized ({group.rate:.1%} classified)"))
        for build in group.uncategorized:
            when = f"{build.last_hit:%Y-%m-%d %H:%M}" if build.last_hit else "?"
            change = f" change {build.change},{build.patchset}" if build.change else ""
            click.echo("  " + strip_controls(f"{when}  {build.build_uuid}  {build.build_status} {build.build_queue}"
                                             f"{change}  {build.log_url}"))


def _window_settings(settings: Settings, days: float | None) -> Settings:
    import dataclasses

    if days is None:
        return settings
    return dataclasses.replace(settings, dashboard=dataclasses.replace(settings.dashboard, days=days))


def _stored_results(settings: Settings) -> Any:
    from .results import ResultStore

    store = ResultStore.open_existing(settings.results_db)
    if store is None:
        raise RecheckError(f"{settings.results_db}: no stored build results yet; `watch` or `ingest` stores them")
    return store


@cli.command()
@click.option("--build", "build_uuid", required=True, help="The failed build's uuid.")
@click.option("--days", type=float, default=None, callback=_check_days,
              help="How far back passing builds are compared with [default: dashboard.days, 10]; 0 for all time.")
@click.option("--top", default=10, show_default=True, type=click.IntRange(1, 1000), help="Lines to show.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
@_pass_context
def explain(ctx: _Context, build_uuid: str, days: float | None, top: int, as_json: bool) -> None:
    """What is new in a build: its lines whose template no recent passing
    build of the same job has, most telling first."""
    from .explain import Explainer, ExplainLimits
    from .results import ResultStore
    from .sanitize import strip_controls

    settings = _window_settings(ctx.settings(), days)
    backend = ctx.backend()
    store = ResultStore.open_existing(settings.results_db)
    window = TimeWindow.last_days(settings.dashboard.days)
    limits = ExplainLimits.from_settings(settings.explain, top=top)
    try:
        found = Explainer(backend, store, limits, window).explain(build_uuid)
    finally:
        if store is not None:
            store.close()
    if as_json:
        click.echo(json.dumps(found.as_json(), ensure_ascii=False))
        return
    build = found.build
    change = f" change {build.change},{build.patchset}" if build.change else ""
    click.echo(strip_controls(f"build {build.uuid}: {build.job} {build.status}{change}"))
    click.echo(f"{len(found.new_templates)} new line templates in {found.lines_read:,} lines read; "
               f"compared with {len(found.baseline)} passing build(s) ({found.baseline_scope})")
    for note in found.notes:
        click.echo(f"note: {note}")
    for line in found.lines:
        when = f"{line.timestamp:%Y-%m-%d %H:%M:%S}" if line.timestamp else "?"
        repeat = f" (x{line.occurrences})" if line.occurrences > 1 else ""
        click.echo()
        click.echo(strip_controls(f"  {when}  {line.filename} {line.level}{repeat}  score {line.score:.1f}"))
        click.echo("    " + strip_controls(line.message))
        if line.link:
            click.echo("    " + strip_controls(line.link))


@cli.command()
@click.option("--queries", "queries_dir", default=None, type=click.Path(file_okay=False),
              help="Fingerprint directory [default: watch.queries].")
@click.option("--days", type=float, default=None, callback=_check_days,
              help="The window [default: dashboard.days, 10]; 0 for all time.")
@click.option("--max-builds", default=None, type=click.IntRange(1, 100_000),
              help="Unexplained failures read per run, newest first [default: explain.cluster_builds, 100].")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line per cluster.")
@_pass_context
def suggest(ctx: _Context, queries_dir: str | None, days: float | None, max_builds: int | None,
            as_json: bool) -> None:
    """Unexplained failures grouped by what is new in them, ranked by the
    changes they hit, each with a suggested fingerprint and its backtest."""
    from .dashboard import gather
    from .sanitize import strip_controls
    from .suggest import row_json, suggest_all

    settings = _window_settings(ctx.settings(), days)
    backend = ctx.backend()
    collected, _ = gather(settings, backend, queries_dir or settings.watch.queries)  # stored results brought up to date
    for bug, error in collected.errors.items():
        click.echo(f"warning: fingerprint {bug} could not run: {error}", err=True)
    window = collected.window  # --days 0: all time (collected.start would cut the oldest build's earlier lines)
    store = _stored_results(settings)
    try:
        found = suggest_all(backend, store, window, settings.explain, max_builds, collected.stored)
    finally:
        store.close()
    run = found.run
    for error in run.errors:
        click.echo(f"warning: {error}", err=True)
    if as_json:
        for cluster, suggestion in found.suggestions:
            click.echo(json.dumps(row_json(cluster, suggestion), ensure_ascii=False))
        return
    click.echo(f"{run.unexplained} unexplained failed voting builds in the window; read {run.examined} "
               f"({run.lines_read:,} lines); {len(run.clusters)} clusters, {found.ready} with a ready fingerprint")
    for rank, (cluster, suggestion) in enumerate(found.suggestions, 1):
        click.echo()
        click.echo(strip_controls(f"#{rank}: {len(cluster.changes)} changes, {len(cluster.builds)} builds, "
                                  f"jobs {', '.join(cluster.jobs[:3])}; last seen {cluster.last_seen:%Y-%m-%d %H:%M}"
                                  if cluster.last_seen else f"#{rank}: {len(cluster.builds)} builds"))
        click.echo("  " + strip_controls(cluster.example.message))
        if suggestion is None:
            click.echo("  no suggestion: the line has no constant words to search for")
            continue
        bt = suggestion.backtest
        state = "ready" if suggestion.ready else f"lead ({suggestion.why_not_ready})"
        click.echo(strip_controls(f"  {state}: {suggestion.query}"))
        click.echo(f"  backtest: {bt.cluster_hits}/{bt.cluster_size} of the cluster, {bt.failed_hits} other failed, "
                   f"{bt.success_hits}/{bt.success_total} passing")
        if suggestion.ready:
            for line in (suggestion.yaml() or "").splitlines():
                click.echo("    " + strip_controls(line))


def main() -> None:
    cli(prog_name="elastic-recheck")


def er_query_main() -> None:
    try:
        er_query(prog_name="er-query", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except RecheckError as exc:
        if "--debug" in sys.argv:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
