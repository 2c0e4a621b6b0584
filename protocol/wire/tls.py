"""The TLS presentation language as RFC 9420 uses it (section 2.1).

Integers are big-endian of fixed width. Variable-length vectors (`opaque x<V>`, and
vectors of structs) are prefixed by their length in bytes in the variable-length
integer encoding of section 2.1.2, borrowed from QUIC (RFC 9000 section 16):

    first byte's top two bits   length of the header   values
    00                          1 byte                 0 .. 63
    01                          2 bytes                64 .. 16383
    10                          4 bytes                16384 .. 2**30 - 1
    11                          invalid

Decoding is strict, so that every value has one encoding (section 2.1.2 requires the
minimum-length header): a longer header than the length needs, the 11 prefix, and
trailing bytes after a whole structure are all `DecodeError`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import TypeVar

from protocol.wire.errors import DecodeError

T = TypeVar("T")

MAX_VARINT = (1 << 30) - 1

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


def varint(value: int) -> bytes:
    """The section 2.1.2 header for a length of `value` bytes (ValueError above 2**30-1)."""
    if value < 0 or value > MAX_VARINT:
        raise ValueError(f"a vector length must be in 0..{MAX_VARINT}")
    if value < 1 << 6:
        return bytes([value])
    if value < 1 << 14:
        return _U16.pack(value | 0x4000)
    return _U32.pack(value | 0x8000_0000)


def u8(value: int) -> bytes:
    return bytes([value])


def u16(value: int) -> bytes:
    return _U16.pack(value)


def u32(value: int) -> bytes:
    return _U32.pack(value)


def u64(value: int) -> bytes:
    return _U64.pack(value)


def opaque(data: bytes) -> bytes:
    """`opaque data<V>`: the header, then the bytes."""
    return varint(len(data)) + data


def vector(items: Iterable[bytes]) -> bytes:
    """A variable-length vector of already encoded items: the header counts bytes."""
    body = b"".join(items)
    return varint(len(body)) + body


def optional(data: bytes | None) -> bytes:
    """`optional<T>`: a presence byte, then the encoded value if present (2.1)."""
    return b"\x00" if data is None else b"\x01" + data


class Reader:
    """Consumes encoded bytes front to back; any shortfall or non-canonical encoding
    raises DecodeError. Callers end with `finish()`, which refuses trailing bytes."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self._pos = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, n: int) -> bytes:
        if n < 0 or n > self.remaining:
            raise DecodeError(f"truncated: needed {n} bytes, {self.remaining} left")
        out = self._data[self._pos:self._pos + n]
        self._pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(_U16.unpack(self.take(2))[0])

    def u32(self) -> int:
        return int(_U32.unpack(self.take(4))[0])

    def u64(self) -> int:
        return int(_U64.unpack(self.take(8))[0])

    def varint(self) -> int:
        first = self.take(1)[0]
        prefix = first >> 6
        if prefix == 0:
            return first
        if prefix == 1:
            value = ((first & 0x3F) << 8) | self.take(1)[0]
            minimum = 1 << 6
        elif prefix == 2:
            rest = self.take(3)
            value = ((first & 0x3F) << 24) | int.from_bytes(rest, "big")
            minimum = 1 << 14
        else:
            raise DecodeError("invalid variable-length integer prefix 0b11")
        if value < minimum:
            raise DecodeError("variable-length integer not minimally encoded")
        return value

    def opaque(self) -> bytes:
        return self.take(self.varint())

    def vector(self, item: Callable[[Reader], T]) -> list[T]:
        """A variable-length vector of items, each read by `item` from its own reader
        over exactly the vector's bytes (an item may not run past the vector)."""
        inner = Reader(self.opaque())
        out: list[T] = []
        while inner.remaining:
            out.append(item(inner))
        return out

    def optional(self, item: Callable[[Reader], T]) -> T | None:
        present = self.u8()
        if present == 0:
            return None
        if present != 1:
            raise DecodeError(f"optional presence byte {present}, expected 0 or 1")
        return item(self)

    def finish(self) -> None:
        if self.remaining:
            raise DecodeError(f"{self.remaining} trailing bytes")
