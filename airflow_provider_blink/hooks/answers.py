"""
Reading an answer's body within bounds, the same way in both clients.

Decompressed as it arrives (gzip, deflate), refused once it exceeds the call's
:attr:`.api.ApiCall.answer_limit` (at most :data:`.api.MAX_ANSWER_BYTES`) *after* decompression,
and read in time linear in its size (one growing buffer).
"""

from __future__ import annotations

import zlib
from typing import Any

from airflow_provider_blink import api
from airflow_provider_blink.exceptions import BlinkResponseError

#: What the clients ask for: the encodings :class:`AnswerBody` decodes within the cap.
ACCEPT_ENCODING = "gzip, deflate"
#: Bytes read off the wire at a time.
CHUNK_BYTES = 64 * 1024
#: Most bytes one decompression step produces.
_PIECE_BYTES = 1024 * 1024


class AnswerBody:
    """
    Collect one answer's body chunk by chunk, within the call's ``answer_limit`` after decompression.

    :param call: the call answered, for messages.
    :param status: the answer's HTTP status, for messages.
    :param encoding: its ``Content-Encoding`` (``None``/``identity``: not compressed).
    :raises BlinkResponseError: an encoding this provider did not ask for.
    """

    def __init__(self, call: api.ApiCall[Any], status: int, encoding: str | None) -> None:
        self._call = call
        self._status = status
        self._data = bytearray()
        self._encoding = (encoding or "identity").strip().lower()
        if self._encoding not in ("identity", "gzip", "x-gzip", "deflate"):
            raise BlinkResponseError(
                f"Blink answered {call.what} (HTTP {status}) with Content-Encoding {encoding!r}, "
                f"which was not asked for ({ACCEPT_ENCODING})."
            )
        self._decoder: Any = None
        self._limit = call.answer_limit

    @property
    def plain(self) -> bool:
        """Whether the answer is not compressed (its ``Content-Length`` is its size)."""
        return self._encoding == "identity"

    def feed(self, chunk: bytes) -> None:
        """Add the next chunk as it came off the wire."""
        if self._encoding == "identity":
            self._append(chunk)
            return
        try:
            while chunk:
                if self._decoder is None or self._decoder.eof:  # the first (or next gzip) member
                    self._decoder = self._new_decoder(chunk)
                # Output in pieces, never past the cap (+1 to notice going over it): memory stays
                # at the cap, however far the chunk would expand.
                room = self._limit + 1 - len(self._data)
                self._append(self._decoder.decompress(chunk, min(room, _PIECE_BYTES)))
                chunk = self._decoder.unconsumed_tail or self._decoder.unused_data
        except zlib.error as exc:
            raise BlinkResponseError(
                f"Blink's answer to {self._call.what} (HTTP {self._status}) is not valid "
                f"{self._encoding} data: {exc}"
            ) from None

    def done(self) -> bytes:
        """The whole (decompressed) body."""
        return bytes(self._data)

    def _new_decoder(self, first: bytes) -> Any:
        if self._encoding != "deflate":
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        # "deflate" should be zlib-wrapped; some servers send raw deflate (the header tells them apart).
        wrapped = len(first) >= 2 and first[0] & 0x0F == 8 and (first[0] << 8 | first[1]) % 31 == 0
        return zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)

    def _append(self, data: bytes) -> None:
        self._data += data
        if len(self._data) > self._limit:
            raise api.answer_too_large(self._call, self._status)
