"""A big message read from IMAP in pieces, so that it is never in memory whole."""

from __future__ import annotations

from imapclient import IMAPClient


class MessagePieces:
    """A message's bytes read in pieces with BODY.PEEK[]<offset.length> (a file-like reader)."""

    def __init__(self, client: IMAPClient, uid: int, piece: int = 1 << 20):
        self.client, self.uid, self.piece, self.offset, self.done = client, uid, piece, 0, False

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (at most a piece); b"" once the message has been read."""
        if self.done:
            return b""
        want = self.piece if size is None or size < 0 else min(size, self.piece)
        section = f"BODY.PEEK[]<{self.offset}.{want}>"
        data = self.client.fetch([self.uid], [section]).get(self.uid, {})
        chunk = next((v for k, v in data.items() if k.startswith(b"BODY[]")), b"") or b""
        self.offset += len(chunk)
        if len(chunk) < want:
            self.done = True
        return bytes(chunk)
