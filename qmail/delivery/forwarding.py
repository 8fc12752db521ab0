"""Forwarding a message being delivered: qmail-local's forwards, forward, condredirect.

The message gets the delivery's Delivered-To line in front (so a loop is caught when it
comes back) and is queued through qmail-queue (qmail/queue/queue_client.py) with the given
envelope sender and recipients. The qp reported is the queue program's process id, as
qmail's qmail_qp() gives it.
"""

import os

from qmail.queue import queue_client

CHUNK = 65536


class ReadError(Exception):
    """The message could not be read; err is the OSError."""

    def __init__(self, err: OSError):
        super().__init__(err)
        self.err = err


def forward(source_fd: int, dtline: bytes, sender: bytes, recipients: list[bytes],
            root: str | None = None, from_start: bool = False) -> tuple[queue_client.Result, int]:
    """Queue dtline + the message on source_fd (from its start when from_start, else from
    where it stands) to recipients; (result, qp)."""
    queue = queue_client.Queue(root)
    qp = queue.pid
    queue.put(dtline)
    offset = 0
    while True:
        try:
            if from_start:
                chunk = os.pread(source_fd, CHUNK, offset)
            else:
                chunk = os.read(source_fd, CHUNK)
        except OSError as err:
            queue.fail()
            queue.from_(sender)
            queue.close()
            raise ReadError(err) from err
        if not chunk:
            break
        offset += len(chunk)
        queue.put(chunk)
    queue.from_(sender)
    for recipient in recipients:
        queue.to(recipient)
    return queue.close(), qp
