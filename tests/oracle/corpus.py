"""Documents and hand-written queries for the differential test against Lucene.

The documents look like CI log events and carry the tokens that break
tokenizers and parsers: paths, dotted names, IPs, URLs, hex ids, numbers,
apostrophes, underscores, and Unicode (accents, CJK, emoji, superscripts,
soft hyphens, combining marks, Turkish İ).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

UTC = dt.timezone.utc


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def log_documents(now: dt.datetime) -> list[dict[str, Any]]:
    """The corpus; ``now`` places a few documents at fixed distances from the
    moment date math calls now (far from any boundary a query rounds to)."""
    rows: list[tuple[str, dict[str, Any]]] = [
        ("Timed out waiting for a reply to message ID 5f3e9a0c7b1d4e2f", dict(
            tags=["screen-n-cpu.txt", "ERROR"], filename="logs/screen-n-cpu.txt", loglevel="ERROR")),
        ("Looks like the node went offline during the build. Check the slave.log (No such file or directory)", dict(
            filename="console.html", tags=["console.html", "console"], build_name="grenade")),
        ('E: Hash Sum mismatch "quoted" C:\\path\\to\\file', dict(
            build_status="SUCCESS", voting="0", build_name="tempest-slow", pid="42")),
        ("ERROR nova.compute.manager [req-1a2b3c4d-0000-4e5f] Instance failed to spawn: libvirtError", dict(
            loglevel="ERROR", tags=["screen-n-cpu.txt", "ERROR"], project="openstack/nova")),
        ("Connection to 10.0.0.12:5672 refused; retrying in 2.5 seconds", dict(
            project="openstack/neutron", build_change="900002", build_patchset="1")),
        ("GET http://169.254.169.254/latest/meta-data/instance-id returned 404", dict(
            filename="logs/screen-q-agt.txt", tags=["screen-q-agt.txt"])),
        ("fetch https://opendev.org/openstack/nova/+/refs/changes/12/900001/2 failed", dict(
            project="openstack/nova", build_change="900001")),
        ("tempest.api.compute.servers.test_servers.ServersTest.test_update_server_name ... FAILED", dict(
            filename="job-output.txt", build_name="tempest-full-py3")),
        ("Don't panic: it's only the node's cache; O'Reilly wasn't here", dict(build_name="tox-py310")),
        ("snake_case_name __init__ _private value_ 1_000_000", dict(build_name="tox_pep8")),
        ("Déjà vu: café naïve résumé Ærøskøbing", dict(severity="WARNING")),
        ("İstanbul ISTANBUL istanbul ıdır Iİ", dict(severity="INFO")),
        ("ΟΔΟΣ Σίσυφος σοφός", dict()),
        ("日本語のテキスト 中文字符 한국어 テスト", dict(tags=["unicode", "cjk"])),
        ("deploy 🔥 failed 👍🏽 again 🇩🇪 ok ❤️ 1️⃣", dict(tags=["emoji"])),
        ("x² + y³ = z⁴ ½ ¼ H₂O ①②", dict(build_name="math")),
        ("soft\u00adhyphen zero\u200bwidth zw\u200djoiner non\u2011breaking", dict()),
        ("\u0301leading combining e\u0301tude", dict()),
        ("sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", dict(
            build_uuid="9f86d081884c7d659a2feaa0c55ad015")),
        ("Traceback (most recent call last): File \"/usr/lib/python3/dist-packages/x.py\", line 42, in <module>", dict(
            loglevel="ERROR", tags=["job-output.txt", "console", "ERROR"])),
        ("version 1.2.3-rc1 build 2026.11.20 took 1,234.56 ms; v2.0 ok", dict(build_name="release")),
        ("AND OR NOT and or not && || ! + - words", dict(build_name="operators")),
        ("wildcards* question? /slashes/ [brackets] {braces} (parens) ~tilde ^caret", dict()),
        ("backslash \\ colon: quote\" apostrophe' end", dict()),
        ("TIMEOUT timeout TimeOut timed_out timed-out", dict(tags=["job-output.txt", "console"])),
        ("", dict(build_name="empty-message", tags=[])),
        ("!!! ??? ...", dict(build_name="punctuation-only", tags=["", "!!!"])),
        ("node-1 node_2 node.3 node:4 node/5 node@6 node#7", dict(build_node="ubuntu-jammy-rax-dfw-0012345")),
        ("mixed123abc 123abc abc123 0x1F 0xdeadbeef 1e10 -42 +7 3.14", dict(build_name="numbers")),
        ("a b c d e f g h i j k l m n o p", dict(build_name="letters")),
        ("repeat repeat repeat words words", dict(build_name="repeats")),
        ("the quick brown fox jumps over the lazy dog", dict(build_name="fox")),
        ("over the quick fox brown dog lazy jumps", dict(build_name="fox-reordered")),
        ("long " + "abcdefghij" * 30 + " end", dict(build_name="long-token")),
        ("ОШИБКА сервер не отвечает", dict(build_name="cyrillic")),
        ("שגיאה בשרת מוצא 'אנשים'", dict(build_name="hebrew")),
        ("خطأ في الخادم", dict(build_name="arabic")),
        ("नमस्ते दुनिया त्रुटि", dict(build_name="devanagari")),
        ("ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３", dict(build_name="fullwidth")),
        ("tab\tseparated\tvalues and\nnewline continuation", dict(build_name="whitespace")),
        # words over 255 characters, cut where Lucene's scanner cuts them
        ("cut " + "a" * 254 + ".b" + "c" * 10 + " here", dict(build_name="long-mid-letter", tags=["x" * 300 + "y"])),
        ("astral " + "x" * 254 + "\U0001D400" + "y" * 10 + " done", dict(build_name="long-astral")),
        ("under " + "_" * 300 + "abc score", dict(build_name="long-underscore")),
        ("accents " + "É" * 300 + " fin", dict(build_name="long-accents")),
        ("digits " + "1," * 200 + " tail", dict(build_name="long-digits")),
        # an empty string is a value, an empty list or a list of nulls none
        ("empty values", dict(build_name="empty-values", severity="", component="", tags=[None], pid=[])),
        ("null in a list", dict(build_name="null-in-list", tags=[None, "console"], component=[None])),
        # numbers and booleans in extra fields: text, as the template maps them
        ("numbers", dict(build_name="numbers-extra", error_pr=-7.1227, attempts=5, ratio=5.0, big=1e10, ok=True)),
        ("more numbers", dict(build_name="numbers-extra-2", error_pr=0.5, attempts=-42, ratio=[1, 2.5], ok=False)),
        # Katakana and South East Asian runs touching Latin letters and digits; Hebrew touching Latin
        ("テストerror エラー_42 ｶﾀｶﾅok ภาษาไทยerror ไทย๑๒ ລາວ1 မြန်မာx ខ្មែរ_y שלוםabc abcשלום", dict(build_name="scripts")),
    ]
    fixed = [
        dt.datetime(2026, 11, 20, 10, 0, tzinfo=UTC),
        dt.datetime(2026, 11, 20, 23, 59, 59, 999000, tzinfo=UTC),
        dt.datetime(2026, 11, 21, 0, 0, tzinfo=UTC),
        dt.datetime(2026, 2, 28, 12, 0, tzinfo=UTC),
        dt.datetime(2025, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
        dt.datetime(2026, 1, 1, 0, 0, tzinfo=UTC),
        dt.datetime(2026, 11, 19, 9, 0, tzinfo=UTC),
        dt.datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC),
    ]
    relative = [dt.timedelta(hours=2), dt.timedelta(days=3), dt.timedelta(days=40), dt.timedelta(days=400)]
    uuids = ["a1a1a1a1", "b2b2b2b2", "c3c3c3c3", "d4d4d4d4"]
    docs = []
    for number, (message, extra) in enumerate(rows):
        if number % 3 == 2:
            stamp = now - relative[number % len(relative)]
        else:
            stamp = fixed[number % len(fixed)]
        uuid = extra.pop("build_uuid", uuids[number % len(uuids)])
        doc: dict[str, Any] = {
            "doc_id": f"d{number}",
            "message": message,
            "@timestamp": _iso(stamp),
            "build_uuid": uuid,
            "build_short_uuid": uuid[:7],
            "build_name": "tempest-full",
            "build_status": "FAILURE",
            "build_queue": "gate" if number % 2 else "check",
            "voting": "1",
            "filename": "job-output.txt",
            "tags": ["job-output.txt", "console"],
            "log_url": f"https://logs.example.org/{uuid}/job-output.txt",
        }
        doc.update(extra)
        docs.append(doc)
    return docs


# Hand-written edge cases, grouped by what they probe.
EDGE_QUERIES: list[str] = [
    # terms, phrases, default operator
    "timed", "TIMED", "timed out", 'message:"timed out waiting"', '"Timed Out"', 'message:"TIMED OUT"',
    '"timed waiting"~1', '"timed waiting"', '"waiting timed"~3', '"waiting timed"~2', '"out timed"~1',
    '"out timed"~2', '"repeat repeat"', '"repeat repeat repeat"~0', '"repeat words repeat"~2',
    '"words repeat"~1', '"words repeat"~3', '"fox quick"~2', '"quick fox"~1', '"quick fox"~3',
    '"brown quick fox"~4', '"the the"~5', '"a b"~', '"a b"~0.5', '"a c"~0.5', '"a c"~1.5', '"a c"~1',
    '"the quick"~100000', '"lazy dog"~2147483647',
    'hash sum', 'hash OR offline', 'hash AND offline', 'hash && sum', 'hash || offline', '+hash offline',
    'a AND b OR hash', 'hash OR timed AND waiting', '(hash OR timed) AND waiting', '(hash OR timed) AND NOT waiting',
    'hash AND NOT sum', 'NOT hash', '-hash', '!hash', '! hash', 'NOT hash AND NOT sum', '-hash -sum',
    '-hash +sum', 'hash -sum', '(-hash)', '((hash))', '(-hash) AND sum', 'sum AND (-hash)', 'sum AND (-missing)',
    # analysis of query text
    'slave.log', '"slave.log"', 'console.html', 'screen-n-cpu.txt', '"screen-n-cpu.txt"', 'tags:screen-n-cpu.txt',
    'tags:"screen-n-cpu.txt"', '10.0.0.12', '"10.0.0.12:5672"', '5672', '169.254.169.254', 'instance-id',
    '"meta-data/instance-id"', 'opendev.org', '"https://opendev.org/openstack/nova"', 'nova.compute.manager',
    '"req-1a2b3c4d-0000-4e5f"', '5f3e9a0c7b1d4e2f', '5F3E9A0C7B1D4E2F', "don't", "Don't", "it's", "node's",
    "o'reilly", '"wasn\'t here"', 'snake_case_name', '__init__', '_private', 'value_', '1_000_000',
    'déjà', 'DÉJÀ', 'deja', 'café', 'naïve', 'ærøskøbing', 'istanbul', 'İstanbul', 'ISTANBUL', 'ıdır', 'IDIR',
    'iİ', 'ii', 'οδος', 'ΟΔΟΣ', 'οδοσ', 'σίσυφος', 'σοφός', 'σοφόσ',
    '日本語', '日', '本', '中文', '字', 'テキスト', 'テスト', 'の', '한국어', '"日本語のテキスト"',
    '🔥', '"deploy 🔥 failed"', '👍', '👍🏽', '🇩🇪', '❤', '❤️', '1️⃣', 'deploy', 'again',
    'x²', 'x', 'y³', '½', '¼', 'h₂o', 'h2o', '①', '②',
    'soft\u00adhyphen', 'softhyphen', 'soft', 'hyphen', 'zero\u200bwidth', 'zero', 'width', 'zw\u200djoiner', 'zw',
    'joiner', 'non\u2011breaking', 'non', 'breaking', '\u0301leading', 'leading', 'e\u0301tude', 'étude',
    'sha256', '"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"',
    '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
    '"/usr/lib/python3/dist-packages/x.py"', 'python3', '"line 42"', '<module>', '"<module>"',
    '1.2.3', '"1.2.3-rc1"', 'rc1', '2026.11.20', '1,234.56', '"1,234.56 ms"', 'v2.0', '0x1f', '0xDEADBEEF',
    '1e10', '-42', '+7', '3.14', '42', 'mixed123abc', '123abc', 'abc123',
    'テストerror', 'テスト', 'error', 'エラー_42', 'エラー', '42', 'ｶﾀｶﾅok', 'ｶﾀｶﾅ', 'ok', 'ภาษาไทยerror', 'ภาษาไทย',
    'ไทย๑๒', 'ไทย', '๑๒', 'ລາວ1', 'ລາວ', '1', 'မြန်မာx', 'မြန်မာ', 'x', 'ខ្មែរ_y', 'ខ្មែរ', '_y', 'y', 'שלוםabc', 'שלום',
    'abc', 'abcשלום', '"テスト error"', 'テス*', '/テ.*/', 'message:/ไท.*/', 'ภาษาไทย~1',
    'error_pr:7.1227', 'error_pr:-7.1227', 'error_pr:"-7.1227"', 'error_pr:0.5', 'error_pr:\\-7.1227', 'attempts:5',
    'attempts:42', 'attempts:"-42"', 'ratio:5', 'ratio:5.0', 'ratio:2.5', 'ratio:"1 2.5"', 'big:1e10',
    'big:10000000000.0', 'ok:true', 'ok:false', 'ok:TRUE', '_exists_:error_pr', '_exists_:ratio', 'attempts:*',
    'error_pr:[0 TO 1]', 'attempts:>1', 'ratio:5*', 'NOT ok:true',
    'ошибка', '"сервер не отвечает"', 'שגיאה', '"אנשים"', 'خطأ', 'नमस्ते', 'दुनिया', 'ｆｕｌｌｗｉｄｔｈ', 'fullwidth', 'ａｂｃ', '１２３',
    'abcdefghij', 'end', '"long end"~1', '"long end"~2', '"long end"~3', 'abcdefghij' * 30, '"' + 'abcdefghij' * 30 + '"',
    'abcdefghij' * 25 + 'abcde', 'fghij' + 'abcdefghij' * 4, '"cut here"~1', '"cut here"~2', 'bcccccccccc', 'b',
    '"astral done"~1', '"astral done"~2', '\U0001D400' + 'y' * 10, 'x' * 254, '"under score"~1', '"under score"~2',
    '_' * 255, '_' * 45 + 'abc', 'abc', '"accents fin"~2', '"accents fin"~1', 'é' * 255, 'é' * 45, '"digits tail"~2',
    'tags:y', 'tags:' + 'x' * 255, 'tags:' + 'x' * 45 + 'y', 'tags:"' + 'x' * 300 + 'y"', 'tab', 'separated', '"values and newline"', 'continuation',
    # lowercase operators, bare symbols, words that are operators elsewhere
    'hash and sum', 'hash or offline', 'hash not sum', 'and', 'or', 'not', 'message:and', '"and or not"',
    'timed - waiting', 'timed + waiting', 'timed ! waiting', 'timed-waiting', 'node-1', 'node!1', 'a!b', 'hash!',
    'timed && ', '&&', '||', 'AND', 'OR', 'NOT', 'AND hash', 'hash OR', 'hash AND', 'NOT NOT hash', '--hash',
    '++hash', '-+hash', '!!hash', 'NOT -hash', '- hash', '+ hash', 'hash^', 'hash^2', 'hash^0.5', '"hash sum"^3',
    'hash~', 'hash~0', 'hash~1', 'hash~2', 'hash~3', 'hsah~1', 'hsah~2', 'haash~1', 'hash~0.5', 'hash~1.5',
    'timeout~', 'TIMEOUT~1', 'tmeout~1', 'tiemout~', 'tiemout~1', 'ab~1', 'a~1', 'b~2', 'abc~2', 'ad~1', 'nde~1',
    'node~1', 'node-1~1', 'slave.log~1', 'slave.lg~1', 'c~', 'e~1', 'déjà~1', 'deja~1',
    # escapes
    'C\\:\\\\path', 'message:C\\:\\\\path', '"C:\\\\path"', 'c\\:', 'slave.log \\(No such file', '\\(parens\\)',
    'wildcards\\*', 'question\\?', '\\/slashes\\/', '\\[brackets\\]', '\\{braces\\}', '\\~tilde', '\\^caret',
    'backslash \\\\', 'colon\\:', 'quote\\"', "apostrophe'", '\\u0041', 'h\\u0061sh', '"h\\u0061sh"', '\\h\\a\\s\\h',
    '\\+7', '\\-42', '\\!\\!\\!', 'project:openstack/nova', 'project:openstack\\/nova', 'project:"openstack/nova"',
    'message:a/b', 'a/b', '/slashes/', 'message:/slashes/',
    # fields
    'build_name:grenade', 'build_name:GRENADE', 'build_name:"tempest-full"', 'build_name:tempest-full',
    'build_name:(grenade OR "tempest-slow")', 'build_name:(grenade OR tempest-slow)', 'build_name:(grenade tox_pep8)',
    'build_name:(+tempest -full)', 'build_name:(-tempest)', 'build_name:(NOT tempest)', 'tags:console',
    'tags:"console.html console"', 'tags:"job-output.txt console"', 'tags:"console job-output.txt"',
    'tags:"job-output.txt console"~3', 'tags:"txt console"~50', 'tags:"txt console"~101', 'tags:"txt console"~200',
    'tags:"console error"~99', 'tags:"console error"~100', 'tags:"console error"~101', 'tags:"screen-n-cpu.txt error"~100',
    'tags:unicode', 'tags:cjk', 'tags:"!!!"', 'filename:"logs/screen-n-cpu.txt"', 'filename:logs',
    'filename:screen-q-agt.txt', 'loglevel:error', 'loglevel:ERROR', 'severity:warning', 'voting:1', 'voting:0',
    'build_status:SUCCESS', 'build_status:failure', 'build_queue:gate', 'project:nova', 'project:"openstack/nova"',
    'build_change:900001', 'build_patchset:1', 'build_uuid:a1a1a1a1', 'build_short_uuid:a1a1a1a',
    'build_node:ubuntu-jammy-rax-dfw-0012345', 'log_url:"https://logs.example.org/a1a1a1a1/job-output.txt"',
    'log_url:logs.example.org', 'pid:42', 'pid:"42"', 'doc_id:d3', 'unknown:hash', 'unknown:"a b"', 'unknown:*',
    'unknown:[a TO b]', 'unknown:a*', 'unknown:/a.*/', 'unknown:abc~1', 'hash OR unknown:x', 'hash AND unknown:x',
    'NOT unknown:x', '-unknown:x', 'NOT unknown:½', 'NOT message:½', 'a OR ½ AND hash', 'hash ½ AND sum',
    'hash OR (½ !!!) AND sum', '_exists_:unknown', 'build_name.keyword:grenade', 'build_name.keyword:"tempest-full"',
    'message:(timed OR hash)', 'message:(timed AND out)', 'build_name:(grenade) AND tags:(console)',
    '"build_name":grenade', 'build_name :grenade', 'build_name: grenade', '(build_name):grenade', 'build\\_name:grenade',
    'build_*:grenade', 'build_nam?:grenade', '*:grenade', '*:*', '*', 'message:*', 'tags:*', 'build_name:*',
    'pid:*', 'loglevel:*', 'severity:*', 'project:*', 'build_change:*',
    # exists
    '_exists_:pid', '_exists_:message', '_exists_:tags', '_exists_:loglevel', '_exists_:severity',
    '_exists_:build_name', '_exists_:"tags"', '_exists_:(tags)', '_exists_:build_*', '_exists_:*',
    '_exists_:@timestamp', 'NOT _exists_:loglevel', '-_exists_:tags', '_exists_:component', '-_exists_:component',
    'component:*', 'NOT component:*', 'severity:*', '-_exists_:severity', 'tags:null', 'component:null', 'pid:*',
    '-_exists_:pid', '-pid:*', '_exists_:message AND NOT tags:console',
    # wildcards and prefixes
    'build_name:temp*', 'build_name:gren?de', 'build_name:TEMP*', 'message:Tim*', 'message:\\Tim*', 'message:t\\im*',
    'message:T?med', 'message:\\T?med', 'tim*', '*med', '*ime*', '?imed', 'ti*ed', 'timed*', 'timed?', 'tim?d*',
    '**', '*?', 'message:**', 'message:?', 'message:??', 'slave.*', 'slave.l?g', '*.log', '10.0.*', '*:5672',
    'déj*', 'DÉJ*', 'istan*', 'İstan*', '日*', '🔥*', 'node-*', 'node\\-1*', 'ab*c', 'build_name:tempest-*',
    'tags:console*', 'tags:screen-n-*', 'tags:*.txt', 'snake_*', '_*', '1_0*', 'timed_*', 'timed\\_*',
    'build_name:*slow', 'build_name:te*st*', 'filename:*cpu*', 'build_uuid:a1*', 'build_uuid:A1*',
    # regular expressions
    'message:/time[ds]/', 'message:/TIME[DS]/', 'message:/tim.*/', '/tim.*/', '/.*out/', '/t.*d/', '/[a-c]+/',
    '/[^a-z]+/', '/node.[0-9]/', '/(timed|hash)/', '/ha{1,2}sh/', '/h.{2}h/', '/.{20,}/', '/déjà/', '/[0-9]+/',
    '/[0-9]{4}/', '/"quoted"/', '/a+/', '/ab|cd/', '/@/', '/.*/', '/$/', '/^/', '/\\d+/', '/\\w+/', '/a\\.b/',
    '/<1-5>/', '/~(a)/', '/a&b/', '/#/', '/.*&.*/', '/(/', '/[/', '/a{2,1}/', '/' + 'a' * 1200 + '/',
    'build_name:/temp.*/', 'build_name:/tempest-full/', 'tags:/screen.*/', 'tags:/.*txt/',
    # ranges
    'build_uuid:[a TO b]', 'build_uuid:{a TO c}', 'build_uuid:[a1a1a1a1 TO b2b2b2b2]', 'build_uuid:{a1a1a1a1 TO b2b2b2b2}',
    'build_uuid:>=b', 'build_uuid:>b', 'build_uuid:<b', 'build_uuid:<=b2b2b2b2', 'build_uuid:>a1a1a1a1',
    'build_uuid:[* TO b]', 'build_uuid:[b TO *]', 'build_uuid:[* TO *]', 'build_uuid:{* TO *}', 'build_uuid:[B TO C]',
    'build_name:[a TO m]', 'build_name:[grenade TO tempest]', 'build_name:{grenade TO tempest}', 'build_change:[900001 TO 900002]',
    'build_change:>900001', 'build_change:>=900001', 'build_change:<900002', 'build_change:[9 TO 10]',
    'message:[a TO b]', 'message:[timed TO timeout]', 'message:{x TO z}', 'message:>z', 'message:<0',
    'build_uuid:["a" TO "b"]', 'build_uuid:[a TO "b b"]', 'build_uuid:[b TO a]', 'build_uuid:[a TO a]',
    'build_uuid:{a1a1a1a1 TO a1a1a1a1]', 'tags:[console TO console]', 'message:[日 TO 本]',
    'build_uuid:>', 'build_uuid:<', 'build_uuid:>=', 'build_uuid:=b', 'build_uuid:> b',
    # dates
    '@timestamp:[2026-11-20T00:00:00Z TO *]', '@timestamp:[2026-11-20 TO 2026-11-20]', '@timestamp:[2026-11-20 TO 2026-11-21}',
    '@timestamp:{2026-11-20 TO 2026-11-21]', '@timestamp:{2026-11-20 TO *]', '@timestamp:[* TO 2026-11-20}',
    '@timestamp:[2026-11 TO 2026-11]', '@timestamp:[2026 TO 2026]', '@timestamp:{2025 TO *]', '@timestamp:[* TO 2025]',
    '@timestamp:>2026-11-20', '@timestamp:>=2026-11-20', '@timestamp:<2026-11-21', '@timestamp:<=2026-11-20',
    '@timestamp:>2026-11-20T23:59:59.998Z', '@timestamp:[2026-11-20T23:59:59.999Z TO 2026-11-21T00:00:00Z]',
    '@timestamp:[2026-11-20T10 TO 2026-11-20T10]', '@timestamp:[2026-11-20T10:00 TO 2026-11-20T10:00]',
    '@timestamp:[2026-11-20T11:00:00+01:00 TO 2026-11-20T11:00:00+01:00]', '@timestamp:[2026-11-20T05:00:00-05:00 TO *]',
    '@timestamp:[now-1d TO now]', '@timestamp:[now-7d TO now]', '@timestamp:[now-30d TO *]', '@timestamp:[now-1w TO now]',
    '@timestamp:[now-1M TO now]', '@timestamp:[now-1y TO now]', '@timestamp:[now-2y TO now-1y]', '@timestamp:>now-5d',
    '@timestamp:<now-5d', '@timestamp:[now/d TO now]', '@timestamp:[* TO now/d]', '@timestamp:[* TO now/d}',
    '@timestamp:{now/d TO *]', '@timestamp:[now-1d/d TO now/d]', '@timestamp:[now-10d/w TO now]', '@timestamp:[now-3h TO now]',
    '@timestamp:[now-600m TO now]', '@timestamp:[now-86400s TO now]', '@timestamp:[now-1H TO now]',
    '@timestamp:[2026-11-20||+1d TO *]', '@timestamp:[2026-11-19||/d TO 2026-11-19||/d]', '@timestamp:[2026-11-20||-1M TO *]',
    '@timestamp:[1763632800000 TO *]', '@timestamp:[1763632800000 TO 1763632800000]', '@timestamp:[0 TO *]',
    '@timestamp:2026-11-20', '@timestamp:"2026-11-20"', '@timestamp:2026-11-20T10:00:00Z', '@timestamp:2026',
    '@timestamp:now', '@timestamp:[now TO now]', '@timestamp:[NOW-1D TO NOW]', '@timestamp:[2026-11-20t10:00:00z TO *]',
    '@timestamp:[yesterday TO now]', '@timestamp:[now-1x TO now]', '@timestamp:[now- TO now]', '@timestamp:[now-1d/2d TO now]',
    '@timestamp:[2026-13-01 TO *]', '@timestamp:[2026-02-30 TO *]', '@timestamp:[2026-11-20 10:00 TO *]',
    '@timestamp:[2026-11-20T10:00:00.123456789Z TO *]', '@timestamp:*', '_exists_:@timestamp AND hash',
    '@timestamp:2026*', '@timestamp:/2026.*/', '@timestamp:2026~1', '@timestamp:[2026-11-20 TO 2026-11-19]',
    # syntax errors and oddities
    'a AND (b', 'a AND b)', '"unterminated', 'message:', ':hash', 'hash:', '(', ')', '()', '[a TO b', '{a TO b}}',
    'field:[a TO b] TO c', 'a:b:c', '"a" "b"', 'hash^abc', '^2', '~', '~2', 'hash~x', 'a::b', 'a :b', 'a\\', '\\',
    'message:(', '+', '-', '!', '+-', 'hash +', 'hash -', 'hash !', 'hash AND AND sum', 'hash OR OR sum',
    'hash NOT', 'NOT', 'NOT (hash)', 'NOT(hash)', '!(hash)', '-(hash)', '+(hash) -(sum)', '(hash)^2', '(hash)~2',
    'tags:(console)~2', 'hash && && sum', 'hash&&sum', 'hash||sum', 'hash &&sum', 'hash|| sum', '& hash', '| hash',
    'message:"a"~2~3', '"a"^2~3', 'hash~1^2', 'hash^2~1', 'a AND', 'AND a', 'a OR', 'OR a', '(a OR) b',
]
