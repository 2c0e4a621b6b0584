"""Strict big-endian readers and writers for the fixed binary layouts.

Every parse ends with `Reader.finish()`, which rejects trailing bytes.
"""

from __future__ import annotations

import struct

from protocol.wire.errors import DecodeError

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


class Reader:
    """Consumes a byte string front to back; any shortfall raises DecodeError."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self._pos = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, n: int) -> bytes:
        if n < 0 or self._pos + n > len(self._data):
            raise DecodeError(f"truncated: needed {n} bytes, {self.remaining} left")
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        return out

    def rest(self) -> bytes:
        out = self._data[self._pos :]
        self._pos = len(self._data)
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(_U16.unpack(self.take(2))[0])

    def u32(self) -> int:
        return int(_U32.unpack(self.take(4))[0])

    def u64(self) -> int:
        return int(_U64.unpack(self.take(8))[0])

    def var8(self) -> bytes:
        """A byte string prefixed by its length as one byte."""
        return self.take(self.u8())

    def var16(self) -> bytes:
        return self.take(self.u16())

    def var32(self) -> bytes:
        return self.take(self.u32())

    def flag(self) -> bool:
        value = self.u8()
        if value not in (0, 1):
            raise DecodeError(f"flag byte must be 0 or 1, got {value}")
        return value == 1

    def expect(self, value: int, what: str) -> None:
        got = self.u8()
        if got != value:
            raise DecodeError(f"unknown {what} {got} (expected {value})")

    def finish(self) -> None:
        if self.remaining:
            raise DecodeError(f"{self.remaining} trailing bytes")


def u8(value: int) -> bytes:
    return bytes((value,))


def u16(value: int) -> bytes:
    return _U16.pack(value)


def u32(value: int) -> bytes:
    return _U32.pack(value)


def u64(value: int) -> bytes:
    return _U64.pack(value)


def var8(data: bytes) -> bytes:
    if len(data) > 0xFF:
        raise ValueError("too long for a one-byte length prefix")
    return bytes((len(data),)) + data


def var16(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise ValueError("too long for a two-byte length prefix")
    return _U16.pack(len(data)) + data


def var32(data: bytes) -> bytes:
    return _U32.pack(len(data)) + data


def flag(value: bool) -> bytes:
    return b"\x01" if value else b"\x00"
