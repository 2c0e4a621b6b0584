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

from collections.abc import Callable, Iterable
from typing import TypeVar

from protocol.wire import codec
from protocol.wire.errors import DecodeError

T = TypeVar("T")

MAX_VARINT = (1 << 30) - 1

def varint(value: int) -> bytes:
    """The section 2.1.2 header for a length of `value` bytes (ValueError above 2**30-1)."""
    if value < 0 or value > MAX_VARINT:
        raise ValueError(f"a vector length must be in 0..{MAX_VARINT}")
    if value < 1 << 6:
        return bytes([value])
    if value < 1 << 14:
        return codec.u16(value | 0x4000)
    return codec.u32(value | 0x8000_0000)


u8, u16, u32, u64 = codec.u8, codec.u16, codec.u32, codec.u64
"""Fixed-width big-endian integers: the wire codec's writers (the same encoding)."""


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


class Reader(codec.Reader):
    """Consumes encoded bytes front to back (fixed-width integers, `take`, `finish` as
    the wire codec's Reader); any shortfall or non-canonical encoding raises
    DecodeError. Callers end with `finish()`, which refuses trailing bytes."""

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

