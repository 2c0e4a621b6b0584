"""padding.json: Signal-style padding and strict unpadding (docs/PROTOCOL.md section 8)."""

from __future__ import annotations

from conformance.drbg import Drbg
from conformance.vectors import FORMAT, Json
from conformance.vectors.common import LABEL, error_name, h
from protocol.e2e import padding


def build() -> Json:
    label = f"{LABEL}padding"
    rng = Drbg(label)
    valid = []
    for n in (0, 1, 15, 16, 157, 158, 159, 160, 200, 317, 318, 319, 320, 478, 479, 480):
        body = rng(n)
        valid.append({"body": h(body), "padded": h(padding.pad(body))})
    for name, body in (("ends with 0x80", b"abc\x80"), ("ends with 0x00", b"abc\x00\x00"),
                       ("only 0x80 bytes", b"\x80" * 158), ("only zero bytes", bytes(159))):
        valid.append({"description": name, "body": h(body), "padded": h(padding.pad(body))})
    for entry in valid:
        assert padding.unpad(bytes.fromhex(entry["padded"])) == bytes.fromhex(entry["body"])

    ten = b"0123456789"
    invalid_cases = [
        ("empty", b""),
        ("158 bytes: not k*160 - 1", ten + b"\x80" + bytes(147)),
        ("160 bytes: not k*160 - 1", ten + b"\x80" + bytes(149)),
        ("no 0x80 marker: 159 zero bytes", bytes(159)),
        ("0x01 where the marker belongs", ten + b"\x01" + bytes(148)),
        ("a non-zero byte after the marker", ten + b"\x80" + bytes(147) + b"\x01"),
        ("10-byte body padded to 319 bytes", ten + b"\x80" + bytes(308)),
        ("158-byte body padded to 319 bytes", bytes(range(158)) + b"\x80" + bytes(160)),
    ]
    invalid = []
    for description, data in invalid_cases:
        invalid.append({"description": description, "padded": h(data),
                        "error": error_name(padding.unpad, data)})
    return {
        "description": "Signal-style padding: body || 0x80 || zeros to k*160 - 1 bytes; "
        "strict unpadding.",
        "format": FORMAT,
        "rng": label,
        "bucket": padding.BUCKET,
        "valid": valid,
        "invalid": invalid,
    }
