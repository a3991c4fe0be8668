"""A helper process that makes audit batches durable while the event loop goes on.

Group commit (docs/audit.md, "Writing") needs one ``fdatasync`` per batch. Done on the
event loop, the sync blocks every other request for its whole duration (a quarter of a
millisecond or more on a virtual disk). Done on a thread, it costs more than it saves:
the thread must take the GIL back after the system call, and a busy loop thread hands it
over only every ``sys.getswitchinterval()`` (5 ms). A separate process has no GIL to
share, and the loop's part is one ``sendmsg`` and one readable socket.

Protocol, over a ``SOCK_SEQPACKET`` socket pair: the gate sends the message ``S`` with
the segment's file descriptor attached (``SCM_RIGHTS``; the kernel gives the helper its
own descriptor for the same open file, so the sync covers exactly the bytes the gate
wrote). The helper calls ``fdatasync`` on it, closes it and answers with the decimal
``errno`` of the failure, ``0`` for success. One request is in flight at a time.

The helper imports nothing but the standard library and runs as ``python -I -S``: it
starts in milliseconds and holds a few MiB. It ignores SIGINT and SIGTERM (the gate
drains and closes the trail on those) and exits when the gate's end of the socket
closes, which includes the gate dying. When the helper is gone the gate syncs on the
loop itself (``HelperGone``), so a lost helper costs speed, never durability, and only
until the audit log starts a new one (``AuditLog._restart_lost_helper``).

    python -I -S sidecar/audit/syncer.py FD      (started by ``SyncHelper.start``)
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the helper process itself never imports asyncio
    from asyncio import AbstractEventLoop

SYNC_REQUEST = b"S"
Done = Callable[[BaseException | None], None]


class HelperGone(RuntimeError):
    """The helper process is not running (it never started, died or was stopped)."""


class SyncHelper:
    """The gate's end: hand a descriptor over, get called back on the loop when synced."""

    def __init__(
        self,
        loop: AbstractEventLoop,
        sock: socket.socket,
        process: subprocess.Popen[bytes],
    ) -> None:
        self._loop = loop
        self._sock = sock
        self._process: subprocess.Popen[bytes] | None = process
        self._waiting: Done | None = None

    @classmethod
    def start(cls, loop: AbstractEventLoop) -> SyncHelper | None:
        """Start the helper process; None when it cannot be started (the gate syncs itself)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", os.path.abspath(__file__), str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
        except (OSError, subprocess.SubprocessError):
            ours.close()
            return None
        finally:
            theirs.close()
        ours.setblocking(False)
        helper = cls(loop, ours, process)
        loop.add_reader(ours.fileno(), helper._on_reply)
        return helper

    @property
    def alive(self) -> bool:
        return self._process is not None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def busy(self) -> bool:
        return self._waiting is not None

    def sync(self, fd: int, done: Done) -> None:
        """Ask for ``fdatasync(fd)``; ``done(error)`` is called on the loop when it is over.

        Raises HelperGone (nothing was sent) when the helper cannot take the request; the
        caller then syncs itself. ``fd`` stays the caller's to close, after ``done``.
        """
        if self._process is None:
            raise HelperGone("the sync helper is not running")
        if self._waiting is not None:
            raise RuntimeError("a sync is already in flight")
        try:
            socket.send_fds(self._sock, [SYNC_REQUEST], [fd])
        except OSError as exc:
            self.stop()
            raise HelperGone(f"the sync helper cannot be reached: {exc}") from exc
        self._waiting = done

    def stop(self) -> None:
        """Close our end (the helper exits on it) and reap the process."""
        process, self._process = self._process, None
        if process is None:
            return
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        try:
            process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def abandon(self) -> None:
        """Give up on a helper that does not answer (stopped, or stuck in the kernel):
        stop listening, close our end and SIGKILL it, without waiting on the loop (a
        process in uninterruptible sleep dies only when it leaves it). A thread reaps
        it. An answer it still sends is never read: the caller syncs the descriptor
        itself and calls ``done`` no more."""
        process, self._process = self._process, None
        self._waiting = None
        if process is None:
            return
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        process.kill()  # SIGKILL ends a SIGSTOPped process too; a reaped one is skipped
        import threading  # the gate's side only: the helper process never needs it

        threading.Thread(target=process.wait, name="tollgate-syncer-reaper", daemon=True).start()

    def _on_reply(self) -> None:
        try:
            reply = self._sock.recv(32)
        except BlockingIOError:
            return
        except OSError:
            reply = b""
        done, self._waiting = self._waiting, None
        if not reply:  # end of file: the helper died
            self.stop()
            error: BaseException | None = HelperGone("the sync helper exited")
        else:
            error = _error_from_reply(reply)
        if done is not None:
            done(error)


def _error_from_reply(reply: bytes) -> OSError | None:
    try:
        code = int(reply)
    except ValueError:
        return OSError(errno.EPROTO, f"sync helper answered {reply!r}")
    if code == 0:
        return None
    return OSError(code, os.strerror(code))


def _serve(sock: socket.socket) -> int:
    """The helper's loop: one request, one sync, one answer, until the gate hangs up."""
    while True:
        try:
            message, fds, _flags, _address = socket.recv_fds(sock, 16, 4)
        except OSError:
            return 1
        if not message:
            return 0
        code = 0 if message == SYNC_REQUEST and len(fds) == 1 else errno.EPROTO
        try:
            if code == 0:
                os.fdatasync(fds[0])
        except OSError as exc:
            code = exc.errno or errno.EIO
        finally:
            for fd in fds:
                os.close(fd)
        try:
            sock.send(str(code).encode("ascii"))
        except OSError:
            return 1


def main(argv: list[str]) -> int:
    # The gate decides when to stop; a Ctrl-C or SIGTERM to the process group must not
    # take the helper away from a gate that is still draining.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sock = socket.socket(fileno=int(argv[1]))
    try:
        return _serve(sock)
    finally:
        sock.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
