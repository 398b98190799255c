"""What the IRC bot says, and to which channels: pure functions, no sockets.

Everything interpolated comes from events, logs and fingerprint files, so it
is stripped of CR, LF and every other control character before it is
formatted; each line is split to fit IRC's 512-byte limit with the protocol
prefix the server adds, on word boundaries and never inside a UTF-8
character.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from .config import read_yaml_mapping
from .errors import ConfigError
from .reporting import Review
from .sanitize import strip_controls

KINDS = ("positive", "negative")
# ":" nick "!" user "@" host " PRIVMSG " channel " :" ... "\r\n": the user and
# host the server relays us with are unknown, so their maximum lengths count.
_USER_MAX, _HOST_MAX = 10, 63


@dataclass(frozen=True)
class ChannelRule:
    channel: str
    projects: frozenset[str] | None  # None: all projects
    kinds: frozenset[str]

    def wants(self, kind: str, projects: Iterable[str]) -> bool:
        return kind in self.kinds and (self.projects is None or bool(self.projects & set(projects)))


def load_channels(path: str | Path) -> list[ChannelRule]:
    """The channel config: ``"#channel": {projects: all | [..], events: [positive, negative]}``."""
    data = read_yaml_mapping(path, "the IRC channel config", "must map each channel to its projects and events")
    rules = []
    for channel, spec in data.items():
        where = f"{path}: {channel}"
        if not isinstance(channel, str) or not channel.startswith(("#", "&")) or any(c in channel for c in " ,\x07"):
            raise ConfigError(f"{where}: not a channel name (like #openstack-qa)")
        if not isinstance(spec, dict) or set(spec) - {"projects", "events"}:
            raise ConfigError(f"{where}: expected 'projects' and 'events'")
        projects = spec.get("projects", "all")
        if projects != "all" and not (isinstance(projects, list) and all(isinstance(p, str) for p in projects)):
            raise ConfigError(f"{where}: projects must be 'all' or a list of project names")
        kinds = spec.get("events", list(KINDS))
        if not isinstance(kinds, list) or not kinds or set(kinds) - set(KINDS):
            raise ConfigError(f"{where}: events must be a list of: {', '.join(KINDS)}")
        rules.append(ChannelRule(channel, None if projects == "all" else frozenset(projects), frozenset(kinds)))
    return rules


@dataclass(frozen=True)
class Announcement:
    kind: str  # positive | negative
    projects: frozenset[str]  # the change's project, plus those the bugs affect
    text: str


def announcements(review: Review, bug_url: str, bug_projects: Mapping[str, Sequence[str]],
                  log_timeout: float) -> list[Announcement]:
    """The lines a classified failure is worth: known bugs, unrecognized jobs, log timeouts."""
    report = review.report
    project = strip_controls(report.project or "unknown project")
    url = strip_controls(report.url or f"{report.change},{report.patchset}")
    pipeline = strip_controls(report.pipeline or "unknown")
    out = []
    found = [(r.job.name, bug) for r in review.results for bug in r.bugs]
    if found:
        listing = ", ".join(f"{strip_controls(job)}: {strip_controls(bug_url.replace('%s', bug))}"
                            for job, bug in found)
        affected = {report.project} | {p for _, bug in found for p in bug_projects.get(bug, ())}
        out.append(Announcement("positive", frozenset(affected),
                                f"{project} change {url} failed because of: {listing}"))
    unknown = [strip_controls(r.job.name) for r in review.results
               if not r.recognized and not r.timed_out and not r.ambiguous]
    if unknown:
        out.append(Announcement("negative", frozenset({report.project}),
                                f"{project} change {url} failed {', '.join(unknown)} in the {pipeline} pipeline "
                                "with an unrecognized error"))
    late = [strip_controls(r.job.name) for r in review.results if r.timed_out]
    if late:
        out.append(Announcement("negative", frozenset({report.project}),
                                f"{project} change {url}: logs of {', '.join(late)} ({pipeline} pipeline) were not "
                                f"indexed within {log_timeout / 60:.0f} minutes, so the failure was not classified"))
    mixed = [strip_controls(r.job.name) for r in review.results if r.ambiguous and not r.recognized]
    if mixed:
        out.append(Announcement("negative", frozenset({report.project}),
                                f"{project} change {url}: {', '.join(mixed)} ({pipeline} pipeline) not classified: "
                                "the short build id matches several builds of the change"))
    return out


def route(items: Iterable[Announcement], rules: Sequence[ChannelRule]) -> list[tuple[str, str]]:
    """(channel, text) pairs, each once."""
    out: list[tuple[str, str]] = []
    for item in items:
        for rule in rules:
            pair = (rule.channel, item.text)
            if rule.wants(item.kind, item.projects) and pair not in out:
                out.append(pair)
    return out


def line_budget(nick: str, channel: str) -> int:
    """Bytes of text one PRIVMSG may carry once the server prefixes it."""
    overhead = len(f":{nick}!{'u' * _USER_MAX}@{'h' * _HOST_MAX} PRIVMSG {channel} :\r\n".encode())
    return 512 - overhead


def split_text(text: str, budget: int) -> list[str]:
    """Lines of at most ``budget`` UTF-8 bytes, broken at spaces where possible."""
    text = strip_controls(text).strip()
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if len(candidate.encode()) <= budget:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = ""
        while len(word.encode()) > budget:  # a word longer than a line: cut between characters
            cut = ""
            for char in word:
                if len((cut + char).encode()) > budget:
                    break
                cut += char
            lines.append(cut)
            word = word[len(cut):]
        current = word
    if current:
        lines.append(current)
    return lines


__all__ = ["Announcement", "ChannelRule", "announcements", "line_budget", "load_channels", "route", "split_text"]
