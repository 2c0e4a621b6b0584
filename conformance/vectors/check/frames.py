"""frames.json: client-server frames, login and register statements and URL
normalisation (docs/PROTOCOL.md section 16)."""

from __future__ import annotations

from typing import Any

from conformance.vectors import load
from conformance.vectors.check.support import At, Entry, Json, b, concat, dispatch, listed, whole
from protocol.e2e.keys import IdentityKeyPair, verify_signature
from protocol.wire import frames

NAME = "frames"
STATEMENT_KEYS = ("identity_seed", "server_url", "challenge", "login_statement",
                  "register_statement", "delete_account_statement")


def entries(doc: Json | None = None) -> list[Entry]:
    doc = load(NAME) if doc is None else doc
    return concat(
        [whole(NAME, doc, "statements", *STATEMENT_KEYS)],
        listed(NAME, doc, "normalize_url"),
        listed(NAME, doc, "client_frames"),
        [whole(NAME, doc, "signatures in REGISTER and LOGIN", "client_frames",
               "register_statement", "login_statement")],
        [whole(NAME, doc, "signature in DELETE_ACCOUNT", "client_frames",
               "register_statement", "delete_account_statement")],
        listed(NAME, doc, "server_frames"),
        listed(NAME, doc, "client_invalid"),
    )


def check_statements(at: At, data: Any) -> None:
    identity = IdentityKeyPair.from_seed(b(data["identity_seed"]))
    challenge = b(data["challenge"])
    at.eq("login_statement", b(data["login_statement"]),
          frames.login_statement(data["server_url"], challenge, "alice"))
    at.eq("register_statement", b(data["register_statement"]),
          frames.register_statement(data["server_url"], challenge, "alice", identity.public))
    at.eq("delete_account_statement", b(data["delete_account_statement"]),
          frames.delete_account_statement(data["server_url"], challenge, "alice"))


def check_normalize_url(at: At, case: Any) -> None:
    at.eq("normalized", case["normalized"], frames.normalize_url(case["input"]))


def check_client_frame(at: At, entry: Any) -> None:
    encoded = b(entry["encoded"])
    request_id, frame = frames.decode_client_frame(encoded)
    at.eq("request_id", entry["request_id"], request_id)
    at.eq("type", entry["type"], frame.TYPE)
    at.eq("encoded", encoded, frames.encode_frame(frame, request_id))


def check_server_frame(at: At, entry: Any) -> None:
    encoded = b(entry["encoded"])
    request_id, frame = frames.decode_server_frame(encoded)
    at.eq("request_id", entry["request_id"], request_id)
    at.eq("type", entry["type"], frame.TYPE)
    at.eq("encoded", encoded, frames.encode_frame(frame, request_id))


def check_signatures(at: At, data: Any) -> None:
    by_name = {e["name"]: e for e in data["client_frames"]}
    _, register = frames.decode_client_frame(b(by_name["REGISTER"]["encoded"]))
    _, login = frames.decode_client_frame(b(by_name["LOGIN"]["encoded"]))
    at.true("client_frames[REGISTER]", isinstance(register, frames.Register), "a REGISTER frame")
    at.true("client_frames[LOGIN]", isinstance(login, frames.Login), "a LOGIN frame")
    assert isinstance(register, frames.Register) and isinstance(login, frames.Login)
    verify_signature(register.identity, register.signature, b(data["register_statement"]))
    verify_signature(register.identity, login.signature, b(data["login_statement"]))


def check_delete_signature(at: At, data: Any) -> None:
    """The DELETE_ACCOUNT frame's signature is the registered key's over the delete
    statement."""
    by_name = {e["name"]: e for e in data["client_frames"]}
    _, register = frames.decode_client_frame(b(by_name["REGISTER"]["encoded"]))
    _, delete = frames.decode_client_frame(b(by_name["DELETE_ACCOUNT"]["encoded"]))
    at.true("client_frames[DELETE_ACCOUNT]", isinstance(delete, frames.DeleteAccount),
            "a DELETE_ACCOUNT frame")
    assert isinstance(register, frames.Register) and isinstance(delete, frames.DeleteAccount)
    verify_signature(register.identity, delete.signature, b(data["delete_account_statement"]))


def check_client_invalid(at: At, entry: Any) -> None:
    at.raises("error", entry["error"], lambda: frames.decode_client_frame(b(entry["encoded"])))


check = dispatch({
    "statements": check_statements,
    "normalize_url": check_normalize_url,
    "client_frames": check_client_frame,
    "signatures in REGISTER and LOGIN": check_signatures,
    "signature in DELETE_ACCOUNT": check_delete_signature,
    "server_frames": check_server_frame,
    "client_invalid": check_client_invalid,
})
