"""The command grammar: every text is an intent or a usage error, never anything else."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.errors import UsageError
from bot.domain.model import BackupType, Kind
from bot.domain.operations import (
    CreateBackup,
    CreateSnapshot,
    Intent,
    ListBackups,
    ListSnapshots,
    RequestDelete,
    RequestRestore,
    ShowHelp,
)
from bot.slack.parsing import parse, usage

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
        (S, "frobnicate", "Unknown subcommand"),
        (S, "list abc", "not a server id"),
        (S, "list 0", "not a server id"),
        (S, "list 12345 manual", "not a server id"),
        (B, "list manual 12345", "not a server id"),
        (B, "list 1 2", "not a server id"),
        (S, "list 12345678901", "not a server id"),
        (S, "list ١٢٣", "not a server id"),  # non-ASCII digits
        (S, "create", "server id is missing"),
        (S, "create 12345", "name is missing"),
        (S, "create 12345 bad/name", "snapshot name"),
        (S, "create 12345 " + "x" * 65, "snapshot name"),
        (S, "create 12345 naïve", "snapshot name"),
        (S, "create -1 name", "server id must be a number"),
        (B, "create x", "server id must be a number"),
        (S, "restore", "id is missing"),
        (S, "restore 0", "must be a number"),
        (S, "delete 801 now", "only the id"),
        (B, "create 1 " + "d" * 501, "too long"),
        (S, "x" * 5000, "too long"),
    ],
)
def test_bad_input_is_a_usage_error_with_help(kind: Kind, text: str, says: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(kind, text)
    assert says in caught.value.message
    assert caught.value.usage.startswith(f"`/{kind.value} ")


def test_usage_for_one_subcommand_names_only_it() -> None:
    assert usage(B, "list") == (
        "`/backup list [server_id] [manual|automatic]`: "
        "list backups, of every server or of one, optionally by type"
    )
    assert usage(S).count("`/snapshot ") == 5


@given(kind=st.sampled_from([S, B]), text=st.text(max_size=3000))
def test_any_text_is_an_intent_or_a_usage_error(kind: Kind, text: str) -> None:
    try:
        intent = parse(kind, text)
    except UsageError as error:
        problem = error
        assert problem.message
        assert problem.usage
    else:
        assert isinstance(
            intent,
            ShowHelp
            | ListSnapshots
            | ListBackups
            | CreateSnapshot
            | CreateBackup
            | RequestRestore
            | RequestDelete,
        )
