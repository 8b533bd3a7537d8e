"""C2SP signed notes, checkpoints and cosignatures: the specifications' own examples, round
trips with new keys, and every way a note or checkpoint can be wrong."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

import pytest

from ledger.audit import checkpoint as cp
from ledger.audit import note as n

# c2sp.org/signed-note, "Verifier keys: Example" (C2SP/C2SP at 5ba5ee8, BSD-1-Clause).
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n"
    "\n"
    "— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mF"
    "XmRKuwHjG1Yu72IneyaQM=\n"
)
# c2sp.org/signed-note, the opening example (no verifier key is published for it).
SPEC_POEM = (
    "Ognuno sta solo sul cuor della terra\n"
    "trafitto da un raggio di sole:\n"
    "\n"
    "ed è subito sera.\n"
    "\n"
    "— quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrM"
    "ouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n"
)
# c2sp.org/tlog-checkpoint and c2sp.org/tlog-cosignature, their examples.
SPEC_CHECKPOINT_TEXT = (
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)
SPEC_LOG_LINE = (
    "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/"
    "Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)
SPEC_WITNESS_LINE = (
    "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX"
    "3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)
SPEC_COSIGNED = SPEC_CHECKPOINT_TEXT + "\n" + SPEC_LOG_LINE + SPEC_WITNESS_LINE

ORIGIN = "ledger.example.org/tea-village"
# Fixed seeds: the parametrized cases below are built from these keys, and every test
# process (pytest-xdist) must collect the same cases.
LOG = n.Ed25519Signer(ORIGIN, bytes([1]) * 32)
OTHER_LOG = n.Ed25519Signer("ledger.example.org/river", bytes([2]) * 32)
WITNESSES = [
    n.Ed25519Signer(f"witness.example.org/w{i}", bytes([10 + i]) * 32, n.COSIGNATURE_V1)
    for i in range(3)
]
ROOT = bytes(range(32))
CHECKPOINT = cp.Checkpoint(ORIGIN, 42, ROOT)


# -- the specifications' examples ----------------------------------------------------------------


def test_the_spec_verifier_key_verifies_the_spec_note() -> None:
    verifier = n.parse_vkey(SPEC_VKEY)
    assert (verifier.name, verifier.key_id, verifier.vkey) == (
        "example.com/foo",
        0x530D903A,
        SPEC_VKEY,
    )
    assert n.key_id("example.com/foo", n.ED25519, verifier.public_key) == 0x530D903A
    opened = n.open_note(SPEC_NOTE, [verifier])
    assert opened.text == "This is an example message.\n"
    assert opened.verified_by == (verifier,)


def test_the_spec_note_fails_once_its_text_changes() -> None:
    changed = SPEC_NOTE.replace("example message", "example massage")
    with pytest.raises(n.NoteError, match=r"example.com/foo \(key 530d903a\) does not verify"):
        n.open_note(changed, [n.parse_vkey(SPEC_VKEY)])


def test_the_spec_poem_is_split_at_its_last_blank_line() -> None:
    note = n.parse_note(SPEC_POEM)
    assert note.text.endswith("trafitto da un raggio di sole:\n\ned è subito sera.\n")
    [signature] = note.signatures
    assert signature.name == "quasimodo.example/salvatore"
    assert signature.key_id == 914071627  # the first four bytes of "NnugSz..."
    assert len(signature.signature) == 64
    assert str(note) == SPEC_POEM


def test_the_spec_checkpoint_and_its_cosignature_parse() -> None:
    note = n.parse_note(SPEC_COSIGNED)
    checkpoint = cp.parse_checkpoint(note.text)
    assert checkpoint.origin == "example.com/behind-the-sofa"
    assert checkpoint.size == 20852163
    assert checkpoint.root == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert checkpoint.text == SPEC_CHECKPOINT_TEXT
    log, witness = note.signatures
    assert (log.name, len(log.signature), log.timestamp) == (
        "example.com/behind-the-sofa",
        64,
        None,
    )
    # The cosignature's time is the one of the spec's signed-message example.
    assert (witness.name, witness.key_id, witness.timestamp) == (
        "witness.example.com/w1",
        0x8D66CF3F,
        1679315147,
    )
    assert str(note) == SPEC_COSIGNED


def test_the_cosigned_message_is_the_spec_one() -> None:
    assert n.cosigned_message(SPEC_CHECKPOINT_TEXT, 1679315147) == (
        b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
        b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    )


def test_the_spec_checkpoint_is_refused_without_its_key() -> None:
    with pytest.raises(cp.CheckpointError, match="no signature by a known key") as caught:
        cp.open_checkpoint(SPEC_COSIGNED, LOG.verifier, origin="example.com/behind-the-sofa")
    assert caught.value.reason == "signature"


# -- keys ------------------------------------------------------------------------------------------


def test_a_key_id_is_the_hash_of_name_type_and_key() -> None:
    v = LOG.verifier
    digest = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + v.public_key).digest()
    assert v.key_id == int.from_bytes(digest[:4], "big")
    material = base64.b64encode(b"\x01" + v.public_key).decode()
    assert v.vkey == f"{ORIGIN}+{digest[:4].hex()}+{material}"
    w = WITNESSES[0].verifier
    digest = hashlib.sha256(w.name.encode() + b"\n\x04" + w.public_key).digest()
    assert w.key_id == int.from_bytes(digest[:4], "big")


def test_key_strings_round_trip() -> None:
    for signer in (LOG, WITNESSES[0]):
        assert n.parse_skey(signer.skey) == signer
        assert n.parse_vkey(signer.verifier.vkey) == signer.verifier
    prefix = f"PRIVATE+KEY+{ORIGIN}+{LOG.key_id:08x}+"
    assert LOG.skey.startswith(prefix)
    assert base64.b64decode(LOG.skey[len(prefix) :]) == b"\x01" + LOG.seed


@pytest.mark.parametrize(
    ("vkey", "reason"),
    [
        ("example.com/foo+530d903a", "name\\+hex key id\\+base64"),
        ("example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "does not match"),
        ("example.com/bar+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "does not match"),
        ("example.com/foo+530D903A+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "hex digits"),
        ("example.com/foo+530d903a+AukyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "not an Ed25519"),
        ("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2", "base64"),
        ("example com+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "without spaces"),
        ("+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "1\\.\\.200 characters"),
    ],
)
def test_a_malformed_verifier_key_is_refused(vkey: str, reason: str) -> None:
    with pytest.raises(n.NoteError, match=reason):
        n.parse_vkey(vkey)


@pytest.mark.parametrize(
    ("skey", "reason"),
    [
        ("PRIVATE+KEY+a+00000000", "PRIVATE\\+KEY\\+name"),
        ("KEY+a+00000000+AQ==", "starts with"),
        (LOG.skey.replace(f"+{LOG.key_id:08x}+", "+00000000+"), "does not match"),
        (LOG.skey[:-4], "not an Ed25519"),
        (LOG.skey[:-1], "base64"),
    ],
)
def test_a_malformed_private_key_is_refused(skey: str, reason: str) -> None:
    with pytest.raises(n.NoteError, match=reason):
        n.parse_skey(skey)


# -- notes: signing and the reader's rules ----------------------------------------------------


def test_a_signed_note_verifies_with_its_key_and_not_with_another() -> None:
    signed = n.sign_note("hello\n", [LOG])
    assert n.open_note(signed, [LOG.verifier]).text == "hello\n"
    with pytest.raises(n.NoteError, match="no signature by a known key"):
        n.open_note(signed, [OTHER_LOG.verifier])


def test_signatures_by_unknown_keys_are_ignored() -> None:
    signed = n.sign_note("hello\n", [OTHER_LOG, LOG, *WITNESSES[:1]], timestamp=1_700_000_000)
    opened = n.open_note(signed, [LOG.verifier])
    assert opened.verified_by == (LOG.verifier,)
    assert len(opened.note.signatures) == 3


def test_a_key_with_the_same_name_but_another_id_is_unknown() -> None:
    impostor = n.Ed25519Signer.generate(ORIGIN)
    signed = n.sign_note("hello\n", [impostor])
    with pytest.raises(n.NoteError, match="no signature by a known key"):
        n.open_note(signed, [LOG.verifier])


@dataclass(frozen=True)
class Refusing:
    """A verifier that shares the log key's name and id but accepts nothing (a colliding key:
    its signature check is what decides)."""

    name: str
    key_id: int

    def verify(self, text: str, signature: bytes) -> bool:
        return False


def test_a_failing_signature_of_a_known_key_rejects_the_whole_note() -> None:
    signed = n.sign_note("hello\n", [LOG, OTHER_LOG])
    collider = Refusing(LOG.name, LOG.key_id)
    with pytest.raises(n.NoteError, match="does not verify"):
        n.open_note(signed, [collider, OTHER_LOG.verifier])


def test_sixteen_signatures_are_read() -> None:
    signers = [n.Ed25519Signer.generate(f"k{i}") for i in range(16)]
    signed = n.sign_note("many\n", signers)
    assert len(n.open_note(signed, [s.verifier for s in signers]).verified_by) == 16


GOOD = n.sign_note("hello\n", [LOG])
LINE = GOOD.split("\n")[2]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("hello\n" + LINE + "\n", "no blank line"),
        (GOOD.rstrip("\n"), "end with a newline"),
        ("hello\n\n", "at least one signature"),
        ("hello\n\n- " + LINE[2:] + "\n", "line 3 is not a signature line"),
        ("hello\n\n" + LINE.replace(" ", "  ", 1) + "\n", "'— <name> <base64>'"),
        ("hello\n\n" + LINE + " extra\n", "'— <name> <base64>'"),
        ("hello\n\n" + LINE[:-2] + "!!\n", "not standard base64"),
        ("hello\n\n" + LINE.split(" ")[0] + " " + LINE.split(" ")[1] + " AAAA\n", "key id and"),
        ("hel\x01lo\n\n" + LINE + "\n", "control character"),
        ("a+b\n\n" + LINE.replace(ORIGIN, "a+b") + "\n", "without spaces or '\\+'"),
        (b"hello\n\n\xff" + LINE.encode() + b"\n", "UTF-8"),
        ("x\n" * 3 + "\n" + (LINE + "\n") * 101, "at most 100"),
    ],
)
def test_a_malformed_note_is_refused(data: str | bytes, reason: str) -> None:
    with pytest.raises(n.NoteError, match=reason):
        n.open_note(data, [LOG.verifier])


def test_a_note_text_must_end_in_a_newline_to_be_signed() -> None:
    with pytest.raises(n.NoteError, match="end with a newline"):
        n.sign_note("hello", [LOG])


# -- checkpoints -------------------------------------------------------------------------------


def test_a_checkpoint_round_trips_through_its_signed_note() -> None:
    signed = cp.sign_checkpoint(CHECKPOINT, LOG)
    assert signed.startswith(f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}\n\n— {ORIGIN} ")
    opened = cp.open_checkpoint(signed, LOG.verifier)
    assert opened.checkpoint == CHECKPOINT
    assert opened.witnesses == ()


def test_extension_lines_are_kept_and_signed() -> None:
    with_ext = cp.Checkpoint(ORIGIN, 1, ROOT, ("time 1700000000",))
    signed = cp.sign_checkpoint(with_ext, LOG)
    assert cp.open_checkpoint(signed, LOG.verifier).checkpoint == with_ext
    changed = signed.replace("time 1700000000", "time 1700000001")
    with pytest.raises(cp.CheckpointError, match="does not verify"):
        cp.open_checkpoint(changed, LOG.verifier)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("\n42\n", "\n43\n"),
        (base64.b64encode(ROOT).decode()[:4], "AAAA"),
        (ORIGIN + "\n", ORIGIN + "x\n"),
    ],
)
def test_a_changed_checkpoint_body_fails_its_signature(old: str, new: str) -> None:
    signed = cp.sign_checkpoint(CHECKPOINT, LOG)
    with pytest.raises(cp.CheckpointError, match="does not verify") as caught:
        cp.open_checkpoint(signed.replace(old, new, 1), LOG.verifier)
    assert caught.value.reason == "signature"


def test_a_checkpoint_signed_by_another_key_is_refused() -> None:
    forged = cp.sign_checkpoint(CHECKPOINT, n.Ed25519Signer.generate(ORIGIN))
    with pytest.raises(cp.CheckpointError, match="no signature by a known key") as caught:
        cp.open_checkpoint(forged, LOG.verifier)
    assert caught.value.reason == "signature"


def test_a_checkpoint_of_another_origin_is_refused() -> None:
    other = cp.Checkpoint("ledger.example.org/river", 42, ROOT)
    signed = cp.sign_checkpoint(other, LOG)  # the right key, the wrong log
    wrong_log = r"of 'ledger\.example\.org/river', not of"
    with pytest.raises(cp.CheckpointError, match=wrong_log) as caught:
        cp.open_checkpoint(signed, LOG.verifier)
    assert caught.value.reason == "origin"
    assert cp.open_checkpoint(signed, LOG.verifier, origin="ledger.example.org/river")


ROOT_B64 = base64.b64encode(ROOT).decode()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (f"{ORIGIN}\n42\n", "an origin, a size and a root"),
        (f"{ORIGIN}\n042\n{ROOT_B64}\n", "not a decimal"),
        (f"{ORIGIN}\n-1\n{ROOT_B64}\n", "not a decimal"),
        (f"{ORIGIN}\n4 2\n{ROOT_B64}\n", "not a decimal"),
        (f"{ORIGIN}\n42\n{ROOT_B64[:-1]}\n", "not base64"),
        (f"{ORIGIN}\n42\n{base64.b64encode(ROOT[:31]).decode()}\n", "32 bytes"),
        (f"\n42\n{ROOT_B64}\n", "origin must be"),
        (f"{ORIGIN}\n42\n{ROOT_B64}\n\nx\n", "extension line"),
        (f"{ORIGIN}\n42\n{ROOT_B64}", "end with a newline"),
        (f"{ORIGIN}\n99999999999999999999\n{ROOT_B64}\n", "out of range"),
    ],
)
def test_a_malformed_checkpoint_is_refused(text: str, reason: str) -> None:
    with pytest.raises(cp.CheckpointError, match=reason) as caught:
        cp.parse_checkpoint(text)
    assert caught.value.reason == "malformed"


def test_a_checkpoint_note_with_a_malformed_signature_line_is_malformed() -> None:
    signed = cp.sign_checkpoint(CHECKPOINT, LOG)
    with pytest.raises(cp.CheckpointError, match="not a signature line") as caught:
        cp.open_checkpoint(signed.replace("— ", "-- "), LOG.verifier)
    assert caught.value.reason == "malformed"


# -- cosignatures and the witness policy --------------------------------------------------------


def cosigned(count: int, timestamp: int = 1_700_000_000) -> str:
    signed = cp.sign_checkpoint(CHECKPOINT, LOG)
    lines = [cp.cosign(signed, w, timestamp=timestamp + i) for i, w in enumerate(WITNESSES[:count])]
    return cp.with_cosignatures(signed, lines)


def test_cosignatures_count_towards_the_witness_policy() -> None:
    keys = [w.verifier for w in WITNESSES]
    opened = cp.open_checkpoint(cosigned(2), LOG.verifier, witnesses=keys, quorum=2)
    assert opened.witnesses == tuple(keys[:2])
    assert [s.timestamp for s in opened.note.signatures] == [None, 1_700_000_000, 1_700_000_001]
    with pytest.raises(cp.CheckpointError, match="2 of the required 3 witnesses") as caught:
        cp.open_checkpoint(cosigned(2), LOG.verifier, witnesses=keys, quorum=3)
    assert caught.value.reason == "witnesses"


def test_a_cosignature_with_a_changed_time_fails() -> None:
    note = n.parse_note(cosigned(1))
    log, witness = note.signatures
    moved = n.Signature(
        witness.name, witness.key_id, (1).to_bytes(8, "big") + witness.signature[8:]
    )
    tampered = str(n.Note(note.text, (log, moved)))
    with pytest.raises(cp.CheckpointError, match="does not verify"):
        cp.open_checkpoint(tampered, LOG.verifier, witnesses=[WITNESSES[0].verifier], quorum=1)


def test_a_cosignature_alone_is_not_the_logs_signature() -> None:
    signed = cp.sign_checkpoint(CHECKPOINT, LOG)
    line = cp.cosign(signed, WITNESSES[0], timestamp=1)
    only_witness = str(n.Note(n.parse_note(signed).text, (line,)))
    with pytest.raises(cp.CheckpointError, match="not signed by the log's key"):
        cp.open_checkpoint(only_witness, LOG.verifier, witnesses=[WITNESSES[0].verifier])


def test_keys_of_the_wrong_kind_are_refused() -> None:
    with pytest.raises(cp.CheckpointError, match="type 0x01"):
        cp.sign_checkpoint(CHECKPOINT, WITNESSES[0])
    with pytest.raises(cp.CheckpointError, match="0x04"):
        cp.cosign(cp.sign_checkpoint(CHECKPOINT, LOG), LOG, timestamp=1)
    with pytest.raises(n.NoteError, match="needs a timestamp"):
        WITNESSES[0].sign("x\n")
