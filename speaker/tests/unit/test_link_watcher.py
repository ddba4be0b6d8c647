"""link.LinkWatcher's reader against a fake event socket: it never stops watching on
its own, whatever the socket or the callbacks do (the real socket, overrun included:
tests/l2/test_netlink_netns.py)."""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging

from lbspeaker import link

UP = link.IFF_UP | link.IFF_LOWER_UP
WAIT_S = 5.0


class FakeEvents:
    """Stands in for the AsyncIPRoute bound to the event groups: each get() yields one
    scripted datagram's messages (an empty one is what pyroute2 gives when its socket ends),
    or raises a scripted exception."""

    def __init__(self, script: asyncio.Queue) -> None:
        self.script = script
        self.closed = False

    async def get(self):
        batch = await self.script.get()
        if isinstance(batch, BaseException):
            raise batch
        for msg in batch:
            yield msg

    def close(self) -> None:
        self.closed = True


def newlink(index: int, flags: int) -> dict:
    return {"event": "RTM_NEWLINK", "index": index, "flags": flags}


async def until(check) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while loop.time() < deadline:
        if check():
            return True
        await asyncio.sleep(0.01)
    return check()


def watcher(script: asyncio.Queue, ups: list, on_addresses=lambda: None) -> tuple[link.LinkWatcher, list]:
    """A watcher of one interface (index 3, down, absent from sysfs so it reads as down)
    whose sockets are fakes reading ``script``; the list gets each socket opened."""
    w = link.LinkWatcher(ups.append, on_addresses)
    w.state = {3: ("lbtest-none0", False)}
    opened: list[FakeEvents] = []

    async def fake_open() -> None:
        w.ipr = FakeEvents(script)
        opened.append(w.ipr)

    w._open = fake_open  # type: ignore[method-assign]
    return w, opened


def test_a_socket_that_ends_without_our_close_is_replaced_with_a_warning(caplog):
    async def scenario():
        script: asyncio.Queue = asyncio.Queue()
        ups: list[str] = []
        w, opened = watcher(script, ups)
        await w.start()
        script.put_nowait([])  # the socket ended, and not by close()
        script.put_nowait([newlink(3, UP)])  # read from the new socket
        seen = await until(lambda: ups == ["lbtest-none0"])
        reader = w._reader
        w.close()
        return seen, opened, reader

    with caplog.at_level(logging.WARNING, logger="lbspeaker.link"):
        seen, opened, reader = asyncio.run(scenario())
    assert seen, "the watch ended with the socket"
    assert len(opened) == 2 and opened[0].closed
    assert any("link events stopped" in r.getMessage() for r in caplog.records)
    assert reader is not None and reader.done()


def test_a_failing_callback_after_a_reopen_does_not_end_the_watch(caplog):
    async def scenario():
        script: asyncio.Queue = asyncio.Queue()
        ups: list[str] = []
        calls = [0]

        def on_addresses() -> None:
            calls[0] += 1
            raise RuntimeError("callback failed")

        w, opened = watcher(script, ups, on_addresses)
        await w.start()
        script.put_nowait(OSError(errno.ENOBUFS, "No buffer space available"))  # overrun: reopen
        script.put_nowait([newlink(3, UP)])
        seen = await until(lambda: ups == ["lbtest-none0"])
        alive = w._reader is not None and not w._reader.done()
        w.close()
        return seen, alive, calls[0], opened

    with caplog.at_level(logging.WARNING, logger="lbspeaker.link"):
        seen, alive, calls, opened = asyncio.run(scenario())
    assert calls == 1 and len(opened) == 2
    assert seen and alive, "the callback's exception ended the watch"
    assert any("callback failed" in str(r.exc_info and r.exc_info[1]) for r in caplog.records)


def test_close_ends_the_watch_quietly(caplog):
    async def scenario():
        script: asyncio.Queue = asyncio.Queue()
        w, opened = watcher(script, [])
        await w.start()
        await asyncio.sleep(0)
        reader = w._reader
        w.close()
        script.put_nowait([])  # what pyroute2's close() enqueues
        await until(reader.done)
        return reader, opened, w.ipr

    with caplog.at_level(logging.WARNING, logger="lbspeaker.link"):
        reader, opened, ipr = asyncio.run(scenario())
    assert reader.done() and len(opened) == 1 and opened[0].closed and ipr is None
    assert not caplog.records


def test_sockets_that_keep_failing_are_reopened_with_a_bounded_back_off():
    delays = [link.reopen_delay(n) for n in range(1, 12)]
    assert delays[0] == 0  # the first reopen (an overrun) is at once: events were lost
    assert delays[1] == link.REOPEN_DELAY_S
    assert all(b >= a for a, b in itertools.pairwise(delays))
    assert max(delays) == link.REOPEN_MAX_DELAY_S == delays[-1]
    assert link.reopen_delay(10_000) == link.REOPEN_MAX_DELAY_S  # no overflow, still bounded


def test_a_watch_ended_by_an_error_says_so(caplog):
    async def scenario():
        script: asyncio.Queue = asyncio.Queue()
        w, _opened = watcher(script, [])

        async def broken_open() -> None:
            raise ValueError("no socket today")

        await w.start()
        w._open = broken_open  # type: ignore[method-assign]
        script.put_nowait(OSError(errno.ENOBUFS, "No buffer space available"))  # reopen, which fails
        reader = w._reader
        await until(reader.done)
        await asyncio.sleep(0)  # the done callback
        w.close()
        return reader

    with caplog.at_level(logging.ERROR, logger="lbspeaker.link"):
        reader = asyncio.run(scenario())
    assert reader.done()
    assert any("no longer watched" in r.getMessage() for r in caplog.records)
