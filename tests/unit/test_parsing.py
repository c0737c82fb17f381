"""The command grammar: every text is an intent or a usage error, never anything else."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.errors import UsageError
from bot.domain.model import BackupType, Kind
from bot.domain.operations import (
    AddSchedule,
    CreateBackup,
    CreateSnapshot,
    Intent,
    ListBackups,
    ListSchedules,
    ListSnapshots,
    RemoveSchedule,
    RequestDelete,
    RequestRestore,
    ShowHelp,
    ShowStatus,
)
from bot.slack.parsing import GRAMMAR, parse, quoted, summary, usage

S, B = Kind.SNAPSHOT, Kind.BACKUP


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        (S, "", ShowHelp(S)),
        (S, "help", ShowHelp(S)),
        (B, "  HELP ", ShowHelp(B)),
        (S, "list", ListSnapshots(None)),
        (S, "list 12345", ListSnapshots(12345)),
        (B, "list", ListBackups(None, None)),
        (B, "list 12345", ListBackups(12345, None)),
        (B, "list manual", ListBackups(None, BackupType.MANUAL)),
        (B, "list 12345 automatic", ListBackups(12345, BackupType.AUTOMATIC)),
        (
            S,
            "create 12345 before-update Snapshot before update",
            CreateSnapshot(12345, "before-update", "Snapshot before update"),
        ),
        (S, "create 1 a_B-9", CreateSnapshot(1, "a_B-9", "")),
        (B, "create 12345", CreateBackup(12345, "")),
        (B, "create 12345 Pre-deployment   backup", CreateBackup(12345, "Pre-deployment backup")),
        (
            S,
            "restore 801 rollback after bad deploy",
            RequestRestore(S, 801, "rollback after bad deploy"),
        ),
        (B, "restore 501", RequestRestore(B, 501, "")),
        (S, "delete 801", RequestDelete(S, 801)),
        (B, "DELETE 499", RequestDelete(B, 499)),
    ],
)
def test_grammar_gives_typed_intents(kind: Kind, text: str, expected: Intent) -> None:
    assert parse(kind, text) == expected


@pytest.mark.parametrize(
    ("kind", "text", "says"),
    [
        (S, "list abc", "not a server id"),
        (S, "list 0", "not a server id"),
        (S, "list 12345 manual", "snapshots have no type"),
        (B, "list manual 12345", "the server id comes before the type"),
        (B, "list 1 2", "not a backup type"),
        (S, "list 12345678901", "not a server id"),
        (S, "list ١٢٣", "not a server id"),  # non-ASCII digits
        (S, "create", "server id is missing"),
        (S, "create 12345", "name is missing"),
        (S, "create 12345 bad/name", "snapshot name"),
        (S, "create 12345 " + "x" * 65, "snapshot name"),
        (S, "create 12345 naïve", "snapshot name"),
        (S, "create -1 name", "not a server id"),
        (B, "create x", "not a server id"),
        (S, "restore", "id is missing"),
        (S, "restore 0", "ids are 1 to 9999999999"),
        (S, "delete 801 now", "one word too many"),
        (B, "create 1 " + "d" * 501, "too long"),
        (S, "restore 1 bad\x00reason", "control characters"),
    ],
)
def test_bad_input_is_a_usage_error_with_the_subcommands_usage(
    kind: Kind, text: str, says: str
) -> None:
    with pytest.raises(UsageError) as caught:
        parse(kind, text)
    assert says in caught.value.message
    assert caught.value.usage == usage(kind, text.split()[0])  # that one subcommand only


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        # the word as typed, what was expected there
        (
            S,
            "list abc",
            "“abc” is not a server id: expected a server id (a number), or "
            "nothing for every server.",
        ),
        (
            B,
            "list abc",
            "“abc” is not a server id or a backup type: expected a server id "
            "(a number), “manual” or “automatic”.",
        ),
        (
            S,
            "list manual",
            "“manual” is not a server id: snapshots have no type; expected a server id (a number).",
        ),
        (S, "list 0", "“0” is not a server id: ids are 1 to 9999999999."),
        (S, "list 99999999999", "“99999999999” is not a server id: ids are 1 to 9999999999."),
        (S, "list 1 2", "“2” is one word too many: expected only a server id."),
        (S, "list 1 Manual", "“Manual” is one word too many: snapshots have no type."),
        (
            B,
            "list 1 2",
            "“2” is not a backup type: expected “manual” or “automatic” after the server id.",
        ),
        (B, "list manual 12", "“12” is one word too many: the server id comes before the type."),
        (
            B,
            "list manual automatic",
            "“automatic” is one word too many: expected one type at most.",
        ),
        (B, "list 1 manual x", "“x” is one word too many: expected nothing after the type."),
        (
            S,
            "create abc name",
            "“abc” is not a server id: expected a server id (a number) after “create”.",
        ),
        (B, "create 0", "“0” is not a server id: ids are 1 to 9999999999."),
        (S, "create", "The server id is missing: expected a server id (a number) after “create”."),
        (
            S,
            "create 12",
            "The snapshot name is missing: expected a snapshot name (1-64 "
            "letters, digits, - or _) after the server id.",
        ),
        (
            S,
            "create 12 bad/name",
            "“bad/name” is not a snapshot name: expected 1-64 letters, digits, - or _.",
        ),
        (
            S,
            "create 12 " + "n" * 65,
            "“" + "n" * 39 + "…” is too long for a snapshot name "
            "(it has 65 characters): expected 1-64 letters, digits, - or _.",
        ),
        (
            S,
            "restore snap-1",
            "“snap-1” is not a snapshot id: expected a snapshot id (a number) after “restore”.",
        ),
        (B, "delete", "The backup id is missing: expected a backup id (a number) after “delete”."),
        (B, "delete 99999999999", "“99999999999” is not a backup id: ids are 1 to 9999999999."),
        (
            S,
            "delete 12 extra words",
            "“extra” is one word too many: “delete” takes only the snapshot id.",
        ),
        (
            B,
            "create 1 " + "d" * 501,
            "The description is too long: expected at most 500 characters (it has 501).",
        ),
        (S, "restore 1 why\u202e", "The reason contains control characters: expected plain text."),
    ],
)
def test_a_usage_error_quotes_the_word_and_says_what_was_expected(
    kind: Kind, text: str, message: str
) -> None:
    with pytest.raises(UsageError) as caught:
        parse(kind, text)
    assert caught.value.message == message
    assert caught.value.usage == usage(kind, text.split()[0])


@pytest.mark.parametrize(
    ("kind", "word", "meant"),
    [
        (S, "crate", "create"),
        (S, "CRAETE", "create"),
        (B, "lst", "list"),
        (S, "ls", "list"),
        (B, "restor", "restore"),
        (S, "delet", "delete"),
        (S, "hlep", "help"),
        (S, "rm", "delete"),
        (B, "del", "delete"),
        (S, "remove", "delete"),
        (S, "new", "create"),
        (B, "take", "create"),
        (S, "make", "create"),
        (S, "rollback", "restore"),
        (B, "revert", "restore"),
        (S, "12345", "list"),  # the subcommand left out
        (B, "manual", "list"),
    ],
)
def test_an_unknown_subcommand_suggests_the_nearest_with_only_its_usage(
    kind: Kind, word: str, meant: str
) -> None:
    with pytest.raises(UsageError) as caught:
        parse(kind, f"{word} 801 more")
    assert caught.value.message == (
        f"“{word}” is not a /{kind.value} subcommand. Did you mean “{meant}”?"
    )
    assert caught.value.usage == usage(kind, meant)
    assert caught.value.usage.count(f"`/{kind.value} ") == 1


@pytest.mark.parametrize("word", ["frobnicate", "x", "backup", "q" * 300])
def test_an_unknown_subcommand_far_from_all_gets_the_short_list(word: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(S, word)
    shown = word if len(word) <= 40 else word[:39] + "…"
    assert caught.value.message == (
        f"“{shown}” is not a /snapshot subcommand: expected one of “list”, “create”, "
        "“restore”, “delete”, “schedule”, “schedules”, “unschedule”, “help”."
    )
    assert caught.value.usage == (
        "`/snapshot list [server_id]`\n"
        "`/snapshot create &lt;server_id&gt; &lt;name&gt; [description…]`\n"
        "`/snapshot restore &lt;snapshot_id&gt; [reason…]`\n"
        "`/snapshot delete &lt;snapshot_id&gt;`\n"
        "`/snapshot schedule &lt;server_id&gt; &lt;when&gt; keep &lt;N&gt;`\n"
        "`/snapshot schedules [server_id]`\n"
        "`/snapshot unschedule &lt;schedule_id&gt;`\n"
        "`/snapshot help`"
    )


def test_the_snapshot_kind_has_no_type_so_manual_is_not_suggested_as_list() -> None:
    with pytest.raises(UsageError) as caught:
        parse(S, "manual")
    assert "expected one of" in caught.value.message


def test_a_command_that_is_too_long_gets_the_usage_of_its_subcommand() -> None:
    with pytest.raises(UsageError) as caught:
        parse(S, "restore 1 " + "r" * 2000)
    assert caught.value.message == (
        "That command is too long: expected at most 2000 characters (it has 2010)."
    )
    assert caught.value.usage == usage(S, "restore")
    with pytest.raises(UsageError) as caught:
        parse(S, "x" * 5000)
    assert caught.value.usage == summary(S)


def test_a_quoted_word_is_clipped_and_shows_invisible_characters() -> None:
    assert quoted("abc") == "“abc”"
    assert quoted("a" * 41) == "“" + "a" * 39 + "…”"
    assert quoted("1\u202e2\u200b3\x07") == "“1\ufffd2\ufffd3\ufffd”"
    # mrkdwn is left to the renderer (slack/errors.py escapes the whole message once)
    assert quoted("<!channel>`") == "“<!channel>`”"


def test_usage_for_one_subcommand_names_only_it() -> None:
    assert usage(B, "list") == (
        "`/backup list [server_id] [manual|automatic]`: "
        "list backups, of every server or of one, optionally by type"
    )
    assert usage(S).count("`/snapshot ") == 8
    assert summary(B).count("`/backup ") == 9


@given(kind=st.sampled_from([S, B]), text=st.text(max_size=3000))
def test_any_text_is_an_intent_or_a_usage_error(kind: Kind, text: str) -> None:
    try:
        intent = parse(kind, text)
    except UsageError as error:
        problem = error
        assert problem.message
        assert len(problem.message) < 300  # slack/errors.py shows 300 characters of it
        assert problem.usage
        assert problem.usage.count(f"`/{kind.value} ") in (1, len(GRAMMAR[kind]))
    else:
        assert isinstance(
            intent,
            ShowHelp
            | ListSnapshots
            | ListBackups
            | CreateSnapshot
            | CreateBackup
            | RequestRestore
            | RequestDelete
            | AddSchedule
            | ListSchedules
            | RemoveSchedule
            | ShowStatus,
        )


# -- /vpsbot ------------------------------------------------------------------------------------

from bot.domain.operations import (  # noqa: E402 - the /vpsbot tests, kept together here
    ExportAudit,
    ShowPending,
    ShowRequest,
    ShowVpsbotHelp,
    VpsbotIntent,
)
from bot.slack.parsing import VPSBOT_GRAMMAR, parse_vpsbot, vpsbot_usage  # noqa: E402


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ShowVpsbotHelp()),
        ("  HELP ", ShowVpsbotHelp()),
        ("pending", ShowPending()),
        ("Pending", ShowPending()),
        ("request 7", ShowRequest(7)),
        ("request #7", ShowRequest(7)),
        ("request   9999999999", ShowRequest(9_999_999_999)),
        ("audit", ExportAudit(30)),
        ("audit 1", ExportAudit(1)),
        ("audit 3650", ExportAudit(3650)),
        ("AUDIT 007", ExportAudit(7)),
    ],
)
def test_vpsbot_texts_become_intents(text: str, expected: VpsbotIntent) -> None:
    assert parse_vpsbot(text) == expected


@pytest.mark.parametrize(
    ("text", "message", "usage_of"),
    [
        ("pendng", "“pendng” is not a /vpsbot subcommand. Did you mean “pending”?", "pending"),
        ("waiting", "Did you mean “pending”?", "pending"),
        ("7", "“7” is not a /vpsbot subcommand. Did you mean “request”?", "request"),
        ("export", "Did you mean “audit”?", "audit"),
        ("pending now", "“now” is one word too many: “pending” takes nothing after it.", "pending"),
        ("request", "The request id is missing: expected a request id", "request"),
        ("request 0", "“0” is not a request id", "request"),
        ("request 12345678901", "“12345678901” is not a request id: ids are 1 to", "request"),
        ("request #x", "“#x” is not a request id: expected a request id", "request"),
        (
            "request 7 8",
            "“8” is one word too many: “request” takes only the request id.",
            "request",
        ),
        ("audit 0", "“0” is not a number of days: expected a whole number from 1 to 3650", "audit"),
        ("audit 3651", "“3651” is not a number of days", "audit"),
        ("audit -1", "“-1” is not a number of days", "audit"),
        ("audit 1.5", "“1.5” is not a number of days", "audit"),
        ("audit ３", "“３” is not a number of days", "audit"),  # a full-width digit
        (
            "audit 30 days",
            "“days” is one word too many: “audit” takes only a number of days",
            "audit",
        ),
    ],
)
def test_vpsbot_usage_errors_name_the_word_and_one_usage(
    text: str, message: str, usage_of: str
) -> None:
    with pytest.raises(UsageError) as raised:
        parse_vpsbot(text)
    assert message in raised.value.message
    assert raised.value.usage == vpsbot_usage(usage_of)


def test_an_unknown_vpsbot_word_with_nothing_near_lists_the_subcommands() -> None:
    with pytest.raises(UsageError) as raised:
        parse_vpsbot("frobnicate")
    assert raised.value.message == (
        "“frobnicate” is not a /vpsbot subcommand: expected one of “pending”, “request”, "
        "“audit”, “help”."
    )
    assert raised.value.usage.count("`/vpsbot ") == len(VPSBOT_GRAMMAR)


def test_vpsbot_help_shows_every_subcommand() -> None:
    lines = vpsbot_usage().splitlines()
    assert [line.split("`")[1] for line in lines] == [
        "/vpsbot pending",
        "/vpsbot request &lt;id&gt;",
        "/vpsbot audit [days]",
        "/vpsbot help",
    ]


@given(st.text(max_size=3000))
def test_any_vpsbot_text_is_an_intent_or_a_usage_error(text: str) -> None:
    try:
        intent = parse_vpsbot(text)
    except UsageError as error:
        problem = error
        assert problem.message
        assert len(problem.message) < 300  # slack/errors.py shows 300 characters of it
        assert problem.usage.count("`/vpsbot ") in (1, len(VPSBOT_GRAMMAR))
    else:
        assert isinstance(intent, ShowVpsbotHelp | ShowPending | ShowRequest | ExportAudit)
