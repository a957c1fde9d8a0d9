"""Version tokens of the local backend, and the descriptors that keep them true.

A token records a file's status (device, inode, size, mtime, ctime). A status alone
proves nothing: once a file is gone its inode number may be given to a new file of
the same size. So a token may hold the descriptor it was read through open (a pin):
while it is open no other file can take that inode number, and a ``stat`` of the name
showing the same status proves the name still names the very state that was read.
One ``stat`` instead of an open and a read.

Pins are one process-wide budget shared by every storage object, ``pin_budget()``
descriptors at most (32, or an eighth of the soft ``RLIMIT_NOFILE`` if that is less).
The least recently used pin is closed for a new one; its token then cannot be
checked cheaply any more (``LocalStorage.is_current`` says ``False`` and the caller
reads the file again). Before the budget, each table pinned up to 128 descriptors:
with ``ulimit -n 64`` one ``find({})`` over 100 partitions failed with EMFILE, and so
did every later write in the process.

Tokens compare by identity: two reads give two tokens, which is allowed (equal only
if the same state) and makes reuse of a token for another state impossible.
"""

from __future__ import annotations

import contextlib
import os
import resource
import threading
import weakref
from collections import OrderedDict

from ._base import Version

Identity = tuple[int, int, int, int, int]

MAX_PINNED_DESCRIPTORS = 32

# One lock for every pin: the critical sections are a few dictionary operations.
# Re-entrant: a token's __del__ may run (garbage collection) inside a critical section.
_lock = threading.RLock()


def identity(status: os.stat_result) -> Identity:
    """What must match for a name to still name a pinned file unchanged."""
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)


class LocalVersion(Version):
    """One state of one local file: its status, and the pin that makes the status proof."""

    __slots__ = ("__weakref__", "identity", "pin")

    def __init__(self, ident: Identity, pin: int | None) -> None:
        self.identity = ident
        # Invariant: ``pin`` is an open descriptor of the file ``identity`` describes, or
        # None (never pinned, or unpinned by the budget). Changed only under ``_lock``.
        self.pin = pin

    def __del__(self) -> None:
        if self.pin is not None:
            _release(self)


class _Pins:
    """The pinned tokens, least recently used first. Guarded by ``_lock``."""

    def __init__(self) -> None:
        # Weak by design: a token nobody holds gives its pin back at once (``__del__``).
        self.tokens: OrderedDict[int, weakref.ref[LocalVersion]] = OrderedDict()
        self.budget: int | None = None

    def limit(self) -> int:
        if self.budget is None:
            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            share = MAX_PINNED_DESCRIPTORS if soft == resource.RLIM_INFINITY else soft // 8
            self.budget = max(1, min(MAX_PINNED_DESCRIPTORS, share))
        return self.budget


_pins = _Pins()


def pinned(ident: Identity, fd: int) -> LocalVersion:
    """A token for ``ident`` taking ownership of ``fd`` as its pin (the least recently
    used pin beyond the budget is closed)."""
    token = LocalVersion(ident, fd)
    closing: list[int] = []
    with _lock:
        _pins.tokens[id(token)] = weakref.ref(token)
        _evict(closing)
    _close_all(closing)
    return token


def _evict(closing: list[int]) -> None:
    """Unpin the least recently used tokens beyond the budget (caller holds ``_lock``)."""
    while len(_pins.tokens) > _pins.limit():
        oldest_id, oldest = next(iter(_pins.tokens.items()))
        found = oldest()
        if found is None:  # being collected: its __del__ closes the pin
            _pins.tokens.pop(oldest_id, None)
        else:
            _unpin(found, closing)


def still_pinned(token: LocalVersion) -> bool:
    """Whether ``token`` holds its pin; marks it recently used."""
    with _lock:
        if token.pin is None:
            return False
        _pins.tokens.move_to_end(id(token))
        return True


def pin_budget() -> int:
    """How many descriptors the version tokens of this process keep open at most."""
    with _lock:
        return _pins.limit()


def pinned_descriptors() -> int:
    """How many descriptors the version tokens of this process keep open now."""
    with _lock:
        return len(_pins.tokens)


def _release(token: LocalVersion) -> None:
    closing: list[int] = []
    with _lock:
        _unpin(token, closing)
    _close_all(closing)


def _unpin(token: LocalVersion, closing: list[int]) -> None:
    """Caller holds ``_lock``; the descriptor goes to ``closing`` (closed after the lock)."""
    if token.pin is None:
        return
    # The pin goes first: a check racing with this sees None and reads the file instead.
    closing.append(token.pin)
    token.pin = None
    _pins.tokens.pop(id(token), None)


def _reset_after_fork() -> None:
    # The child's copies of the descriptors stay pinned (and counted); only the lock,
    # which another thread may have held at the fork, must be fresh.
    global _lock
    _lock = threading.RLock()


os.register_at_fork(after_in_child=_reset_after_fork)


def _close_all(descriptors: list[int]) -> None:
    for fd in descriptors:
        with contextlib.suppress(OSError):
            os.close(fd)
