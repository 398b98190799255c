"""Settings: one frozen object built at the CLI edge and passed down."""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import ConfigError

BACKENDS = ("embedded", "elasticsearch", "opensearch")


def default_data_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_DATA_HOME") or os.path.join(env.get("HOME", "."), ".local", "share")
    return Path(base) / "elastic-recheck"


@dataclass(frozen=True)
class GerritSettings:
    """Where failure reports come from and reviews go (section ``gerrit:``)."""

    host: str = ""
    port: int = 29418
    user: str = "elastic-recheck"
    key_file: str = ""
    known_hosts: str = "~/.ssh/known_hosts"  # the host key must be in it
    ci_accounts: tuple[str, ...] = ("zuul", "jenkins")
    rest_url: str = ""  # post reviews through the REST API instead of SSH
    rest_password: str = field(default="", repr=False)
    # Where people open a change (the dashboard links change numbers there); empty: https://<host>
    web_url: str = ""

    @property
    def change_web_url(self) -> str:
        return (self.web_url or (f"https://{self.host}" if self.host else "")).rstrip("/")


@dataclass(frozen=True)
class WatchSettings:
    """The real-time path (section ``watch:``)."""

    queries: str = "queries"
    log_timeout: float = 1200.0  # seconds after the event was created
    poll_initial: float = 0.25  # readiness polls: a comment within ~0.5 s of the logs being indexed
    poll_max: float = 0.5
    retry_max: float = 60.0  # backoff cap when the backend or Gerrit is down
    include_projects: str = ""
    exclude_projects: str = ""
    include_jobs: str = ""
    exclude_jobs: str = ""
    # job-name regex -> files that must be indexed before that job is classified
    required_files: tuple[tuple[str, tuple[str, ...]], ...] = ()
    comment_unrecognized: bool = False  # comment even when no bug was found
    bug_url: str = "https://bugs.launchpad.net/bugs/%s"
    templates: tuple[tuple[str, str], ...] = ()
    metrics_port: int = 0  # serve Prometheus metrics on this port (0: off)
    metrics_address: str = "127.0.0.1"  # where the metrics port listens; 0.0.0.0 for every interface
    metrics_connections: int = 64  # open at once; one more closes the oldest (a scrape takes milliseconds)
    metrics_timeout: float = 10.0  # seconds for a connection's whole request and answer
    metrics_request_bytes: int = 8192  # request line and headers; beyond that 431


@dataclass(frozen=True)
class IRCSettings:
    """The IRC bot inside ``watch`` (section ``irc:``); off while ``server`` is empty."""

    server: str = ""
    port: int = 6667
    tls: bool = False
    tls_verify: bool = True
    tls_ca: str = ""  # a CA bundle for the server's certificate (default: the system's)
    nick: str = "elastic-recheck"
    server_password: str = field(default="", repr=False)  # PASS, for servers that want one
    nickserv_password: str = field(default="", repr=False)  # IDENTIFY to NickServ once connected
    sasl_password: str = field(default="", repr=False)  # SASL PLAIN as the nick (instead of PASS)
    channels: str = ""  # the channel config YAML: channel -> projects and events
    pipelines: tuple[str, ...] = ("gate",)  # announce failures in these pipelines only
    rate: float = 1.0  # lines per second, after a burst: below the servers' flood limits
    burst: int = 4
    queue_max: int = 500  # lines kept while disconnected; beyond that counted and logged
    reconnect_max: float = 300.0  # backoff cap, seconds
    exit_wait: float = 5.0  # seconds queued lines are given to go out when watch stops


@dataclass(frozen=True)
class DashboardSettings:
    """The QA dashboard (section ``dashboard:``)."""

    days: float = 10.0  # the trend window
    # Discover URL with {query} where the Lucene query goes (Kibana / OpenSearch Dashboards); empty: no link
    kibana_url: str = ""
    templates: str = ""  # a directory of jinja2 templates replacing the shipped web/ ones
    # An incident: one fingerprint hitting failed builds of at least incident_changes different
    # changes within incident_hours. It ends when that count falls to incident_clear_changes or
    # fewer (lower, so a count wavering around the threshold does not open and close it by turns).
    incident_changes: int = 3
    incident_hours: float = 6.0
    incident_clear_changes: int = 1
    bug_builds: int = 100  # builds listed on a bug's page, newest first (the charts count them all)
    # Seconds a run may spend looking up the lines each bug matched in its builds (one search per bug,
    # busiest first; each answer kept, so the next run goes on where this one stopped)
    line_search_seconds: float = 2.0

    def __post_init__(self) -> None:
        for name in ("incident_changes", "bug_builds"):
            value = getattr(self, name)
            if not (isinstance(value, int) and 0 < value <= 1_000_000):
                raise ConfigError(f"dashboard.{name} must be a positive whole number, not {value!r}")
        if not (isinstance(self.incident_clear_changes, int)
                and 0 <= self.incident_clear_changes < self.incident_changes):
            raise ConfigError(f"dashboard.incident_clear_changes must be 0 or more and below incident_changes "
                              f"({self.incident_changes}), not {self.incident_clear_changes!r}")
        if not (0 < self.incident_hours <= 24 * 365):
            raise ConfigError(f"dashboard.incident_hours must be more than 0 and at most a year, "
                              f"not {self.incident_hours!r}")


@dataclass(frozen=True)
class ExplainSettings:
    """What ``explain``, ``suggest`` and the dashboard's clusters read at
    most (section ``explain:``): each run's cost is bounded by these, and
    the figures they print say when a bound was reached."""

    max_file_lines: int = 20_000  # of each log file of a build, the newest (the end of a log is where it failed)
    baseline_builds: int = 5  # passing builds a failure is compared with
    cluster_builds: int = 100  # unexplained failures grouped per run, newest first
    max_clusters: int = 50  # groups given a suggested fingerprint (each is backtested over the window)

    def __post_init__(self) -> None:
        for name in ("max_file_lines", "baseline_builds", "cluster_builds", "max_clusters"):
            value = getattr(self, name)
            if not (isinstance(value, int) and 0 < value <= 100_000_000):
                raise ConfigError(f"explain.{name} must be a positive whole number, not {value!r}")


@dataclass(frozen=True)
class FingerprintSettings:
    """Limits on fingerprint files (section ``fingerprints:``), far above any
    real one: a file past one is refused, with one line naming it, before it is
    parsed, so a hostile file costs neither time nor memory."""

    max_file_bytes: int = 64 * 1024  # the largest real fingerprints are about 500 bytes
    max_query_chars: int = 10_000


@dataclass(frozen=True)
class ClusterSettings:
    """An Elasticsearch or OpenSearch cluster (section ``cluster:``), used
    when ``backend`` is ``elasticsearch`` or ``opensearch``."""

    urls: tuple[str, ...] = ("http://localhost:9200",)  # one or more nodes; no credentials in them
    api_key: str = field(default="", repr=False)  # "id:key" or the encoded key
    username: str = ""  # basic auth, with password
    password: str = field(default="", repr=False)
    ca_certs: str = ""  # a CA bundle for the cluster's certificate (default: the system's)
    verify_certs: bool = True
    request_timeout: float = 30.0  # seconds per request
    retries: int = 3  # per request, on connection errors, timeouts, 429 and 502-504
    retry_backoff: float = 0.5  # seconds before the first retry, doubling up to 30 s
    index_pattern: str = "logstash-%Y.%m.%d"  # day indices, strftime in UTC
    keyword_suffix: str = "keyword"  # the exact-value sub-field facets use (logstash's default)
    manage_template: bool = True  # install the index template before ingest writes
    template_name: str = "elastic-recheck"
    bulk_documents: int = 5000  # documents per bulk request
    build_days: float = 0.0  # look for a build's logs in this many recent days only; 0: every index


# A devstack/Zuul job's logs that fingerprints read: the console log, the service logs of devstack
# (legacy jobs under logs/, Zuul v3 jobs under <node>/logs/), syslog, and the test results.
DEFAULT_LOG_FILES = (
    "job-output.txt", "console.html", "testrepository.subunit",
    "logs/screen-*.txt", "logs/*.log", "logs/syslog.txt", "logs/devstack-gate-*.txt", "logs/grenade.sh.txt",
    "*/logs/screen-*.txt", "*/logs/*.log", "*/logs/syslog.txt", "*/logs/devstacklog.txt",
    "*/logs/grenade.sh_log.txt",
)
MAX_FETCH_WORKERS = 256
_HOST_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\Z")


def log_file_pattern(pattern: str) -> bool:
    """A glob relative to a build's log URL that cannot lead out of it."""
    return (bool(pattern) and pattern.isprintable() and "\\" not in pattern
            and all(part not in ("", ".", "..") for part in pattern.split("/")))


def log_host_pattern(host: str) -> bool:
    """A host name, an IP address, or ``*.`` and a domain."""
    name = host[2:] if host.startswith("*.") else host
    if not name or len(name) > 253:
        return False
    try:
        ipaddress.ip_address(name.strip("[]"))
        return not host.startswith("*.")
    except ValueError:
        pass
    return all(_HOST_LABEL.match(label) for label in name.lower().split("."))


@dataclass(frozen=True)
class IngestSettings:
    """What one log file and one build may cost at ingest (section ``ingest:``).

    Every byte of a build's logs comes from outside: a gzip bomb, a log server
    that drips a byte a second, a line with no end. Past a limit the file is
    cut where it got to, with a marker line and a warning; the rest of the
    build is still indexed. The defaults are far above what real CI logs need.
    """

    max_file_bytes: int = 1 << 30  # bytes fetched (or read from disk) for one file, before decompression
    max_decompressed_bytes: int = 4 << 30  # bytes of one file after decompression
    max_build_bytes: int = 16 << 30  # all of one build's files together, after decompression
    max_files: int = 20_000  # log files per build
    max_line_bytes: int = 64 * 1024  # a longer line is cut, with a marker saying how much was dropped
    file_timeout: float = 600.0  # seconds for one file from a log server, from the request to the last byte
    # What the daemon fetches of a build (glob patterns relative to its log URL; each also matches its .gz form)
    files: tuple[str, ...] = DEFAULT_LOG_FILES
    log_hosts: tuple[str, ...] = ()  # the only hosts logs are fetched from ("*.example.org": its subdomains)
    workers: int = 4  # builds fetched at once
    # Fetched builds waiting for the writer beyond 2 x workers (so that it always has the next batch
    # while builds queue up) are fetched only while those waiting hold less than this on disk.
    spool_ahead_bytes: int = 2 << 30
    fetch: bool = True  # false: another pipeline feeds the index, the daemon fetches nothing

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not (0 < value < math.inf):
                raise ConfigError(f"ingest.{item.name} must be a positive number, not {value!r}")
        if self.workers > MAX_FETCH_WORKERS:
            raise ConfigError(f"ingest.workers must be at most {MAX_FETCH_WORKERS}, not {self.workers}")
        for pattern in self.files:
            if not log_file_pattern(pattern):
                raise ConfigError(f"ingest.files: {pattern!r} is not a path pattern inside the build "
                                  "(relative, no '.' or '..' part, no '\\')")
        for host in self.log_hosts:
            if not log_host_pattern(host):
                raise ConfigError(f"ingest.log_hosts: {host!r} is not a host name (no scheme, port or path; "
                                  "'*.example.org' for every host under example.org)")


@dataclass(frozen=True)
class ZuulSettings:
    """Zuul's builds API as a build source (section ``zuul:``); off while ``api`` is empty."""

    api: str = ""  # a tenant's API URL: https://zuul.example.org/api/tenant/openstack
    poll_interval: float = 60.0  # seconds between polls
    page_size: int = 100  # builds asked for per request
    max_pages: int = 1000  # requests one poll makes at most (a backfill deeper than this stops there)
    running_timeout: float = 86400.0  # seconds a build may stay "running" before it is given up
    pipelines: str = ""  # regex: only builds of matching pipelines (empty: all)
    jobs: str = ""  # regex: only builds of matching jobs (empty: all)

    def __post_init__(self) -> None:
        for name in ("poll_interval", "page_size", "max_pages", "running_timeout"):
            value = getattr(self, name)
            if not (0 < value < math.inf):
                raise ConfigError(f"zuul.{name} must be a positive number, not {value!r}")


@dataclass(frozen=True)
class RetentionSettings:
    """How long builds are kept (section ``retention:``). Without a bound the
    embedded index, the stored results and the state database grow for as
    long as the daemon runs, a few GiB a day on a busy CI."""

    # A build whose newest line is older than this many days goes (one stored lately stays that long from
    # then): its lines from the embedded index, its stored result, the finished events and fetched builds
    # of its age. 0: everything is kept. At least twice dashboard.days (each bug's trend compares two windows).
    days: float = 30.0


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    backend: str = "embedded"
    gerrit: GerritSettings = GerritSettings()
    watch: WatchSettings = WatchSettings()
    irc: IRCSettings = IRCSettings()
    dashboard: DashboardSettings = DashboardSettings()
    cluster: ClusterSettings = ClusterSettings()
    fingerprints: FingerprintSettings = FingerprintSettings()
    ingest: IngestSettings = IngestSettings()
    zuul: ZuulSettings = ZuulSettings()
    explain: ExplainSettings = ExplainSettings()
    retention: RetentionSettings = RetentionSettings()

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def state_db(self) -> Path:
        return self.data_dir / "state.sqlite3"

    @property
    def results_db(self) -> Path:
        """Each build's stored classification: what the pages read."""
        return self.data_dir / "results.sqlite3"

    @property
    def irc_outbox(self) -> Path:
        """IRC lines other processes (the dashboard) leave for the daemon's bot to send."""
        return self.data_dir / "irc-outbox.sqlite3"

    @property
    def dashboard_state(self) -> Path:
        """The dashboard's own memory: incidents open, regressions announced, matching lines found."""
        return self.data_dir / "dashboard.sqlite3"

    @property
    def spool_dir(self) -> Path:
        """Where the daemon's fetch workers put a build's logs until they are indexed."""
        return self.data_dir / "spool"


_SECTIONS = {
    "gerrit": GerritSettings,
    "watch": WatchSettings,
    "irc": IRCSettings,
    "dashboard": DashboardSettings,
    "cluster": ClusterSettings,
    "fingerprints": FingerprintSettings,
    "ingest": IngestSettings,
    "zuul": ZuulSettings,
    "explain": ExplainSettings,
    "retention": RetentionSettings,
}


# Settings holding URLs the daemon sends credentials to, checked at load by
# check_http_url, and where those credentials go instead.
GERRIT_CREDENTIALS = "gerrit.user and gerrit.rest_password"
CLUSTER_CREDENTIALS = "cluster.username/password or cluster.api_key"
ZUUL_CREDENTIALS = "no setting (the builds API is read anonymously)"
PAGE_LINK = "no setting (a link on public pages)"
_URL_SETTINGS = {("gerrit", "rest_url"): GERRIT_CREDENTIALS, ("gerrit", "web_url"): PAGE_LINK,
                 ("cluster", "urls"): CLUSTER_CREDENTIALS, ("zuul", "api"): ZUUL_CREDENTIALS}


def check_http_url(where: str, url: str, credentials_in: str = "their own settings") -> str:
    """``url`` if it is an http(s) URL with a host and no ``user:password@``.

    Credentials belong in their own settings (``credentials_in``), never in a
    URL: URLs are written to logs and error messages. The error never repeats
    the URL, since it may be the very thing holding a secret; ``where`` names
    the setting instead.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise ConfigError(f"{where}: not a valid URL (not repeated here: it may hold a secret)") from None
    if "@" in parts.netloc:
        raise ConfigError(f"{where}: put credentials in {credentials_in}, not in the URL "
                          "(user:password@ is refused)")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: must be an http:// or https:// URL with a host "
                          "(not repeated here: it may hold a secret)")
    return url


def _coerce(where: str, kind: Any, value: Any) -> Any:
    """A config or environment value as the type the setting declares."""
    text = str(kind)
    try:
        if kind is bool or text == "bool":
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        if kind is int or text == "int":
            return int(value)
        if kind is float or text == "float":
            return float(value)
        if text.startswith("tuple[tuple[str, tuple"):  # mapping of regex -> list
            if not isinstance(value, dict):
                raise ValueError("expected a mapping")
            return tuple((str(k), tuple(str(f) for f in (v if isinstance(v, list) else [v]))) for k, v in value.items())
        if text.startswith("tuple[tuple[str, str]"):
            if not isinstance(value, dict):
                raise ValueError("expected a mapping")
            return tuple((str(k), str(v)) for k, v in value.items())
        if text.startswith("tuple"):
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, list) and not isinstance(items, tuple):
                raise ValueError("expected a list")
            return tuple(str(item).strip() for item in items if str(item).strip())
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _section(name: str, loaded: Any, env: Mapping[str, str], source: str) -> Any:
    cls = _SECTIONS[name]
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{source}: {name}: must be a mapping of settings")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(loaded) - set(fields)
    if unknown:
        raise ConfigError(f"{source}: unknown setting(s) in {name}: {', '.join(sorted(unknown))}")
    origins = {key: f"{source}: {name}.{key}" for key in loaded}
    values = {key: _coerce(origins[key], fields[key].type, value) for key, value in loaded.items()}
    for key, spec in fields.items():
        env_value = env.get(f"ER_{name.upper()}_{key.upper()}")
        if env_value:
            origins[key] = f"ER_{name.upper()}_{key.upper()}"
            values[key] = _coerce(origins[key], spec.type, env_value)
    for key, value in values.items():
        _check_value(origins[key], name, key, value)
    for key in values:
        if (name, key) in _URL_SETTINGS:
            urls = values[key] if isinstance(values[key], tuple) else (values[key],)
            for number, url in enumerate(urls, 1):
                if url:
                    check_http_url(origins[key] if len(urls) == 1 else f"{origins[key]} (URL {number})", url,
                                   _URL_SETTINGS[(name, key)])
    return cls(**values)


# Settings that are regular expressions, checked when the settings load: a bad
# one would otherwise make watch drop, or park, every event it meets.
_REGEX_SETTINGS = {("watch", "include_projects"), ("watch", "exclude_projects"), ("watch", "include_jobs"),
                   ("watch", "exclude_jobs"), ("zuul", "pipelines"), ("zuul", "jobs")}
MAX_DAYS = 36_500.0  # a window of a century: beyond that dates overflow, and nothing is that old


def _check_value(where: str, section: str, key: str, value: Any) -> None:
    """What a setting's type cannot say: finite, not negative numbers (every
    number here is a count, a duration or a rate), regexes that compile."""
    if isinstance(value, float) and not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"{where}: must be a number, 0 or more (not {value})")
    if (section, key) in (("dashboard", "days"), ("retention", "days")) and value > MAX_DAYS:
        raise ConfigError(f"{where}: at most {MAX_DAYS:g} days")
    patterns = [value] if (section, key) in _REGEX_SETTINGS else []
    if (section, key) == ("watch", "required_files"):
        patterns = [pattern for pattern, _ in value]
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"{where}: not a regular expression: {pattern!r}: {exc}") from None


def read_yaml_mapping(path: str | os.PathLike[str], what: str, shape: str) -> dict[Any, Any]:
    """A YAML file that must hold a mapping; every failure is a ConfigError naming the file."""
    try:
        with open(path, encoding="utf-8") as handle:
            loaded = yaml.safe_load(handle) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None  # one line
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: {what} {shape}")
    return loaded


def load_settings(
    config_path: str | None = None,
    data_dir: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Defaults < config file (``--config`` / ``ER_CONFIG``) < ``ER_*`` environment < options."""
    env = os.environ if env is None else env
    values: dict[str, object] = {}
    config_path = config_path or env.get("ER_CONFIG")
    if config_path:
        loaded = read_yaml_mapping(config_path, "the config file", "must be a mapping of settings")
        unknown = set(loaded) - {"data_dir", "backend", *_SECTIONS}
        if unknown:
            raise ConfigError(f"{config_path}: unknown setting(s): {', '.join(sorted(unknown))}")
        values.update(loaded)
    for key in ("data_dir", "backend"):
        env_value = env.get(f"ER_{key.upper()}")
        if env_value:
            values[key] = env_value
    if data_dir:
        values["data_dir"] = data_dir
    backend = str(values.get("backend", "embedded"))
    if backend not in BACKENDS:
        raise ConfigError(f"backend {backend!r} is not available (choose from: {', '.join(BACKENDS)})")
    directory = Path(str(values["data_dir"])).expanduser() if values.get("data_dir") else default_data_dir(env)
    source = config_path or "environment"
    sections = {name: _section(name, values.get(name), env, source) for name in _SECTIONS}
    kept, shown = sections["retention"].days, sections["dashboard"].days
    if kept and not shown:
        raise ConfigError(f"{source}: dashboard.days is 0 (all time) while retention.days ({kept:g}) prunes: "
                          "give the dashboard a window, or set retention.days to 0 to keep everything")
    if 0 < kept < 2 * shown:
        raise ConfigError(f"{source}: retention.days ({kept:g}) is shorter than twice dashboard.days ({shown:g}): "
                          "each bug's trend compares the window with the one before it; raise retention.days "
                          f"to {2 * shown:g} or more, or set it to 0 to keep everything")
    return Settings(data_dir=directory, backend=backend, **sections)
