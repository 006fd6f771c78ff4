"""devstack's one wait: what it returns, how often it asks, and what its failure says."""

from __future__ import annotations

import itertools

import pytest

from devstack.waiting import WaitTimeoutError, until


def test_the_first_true_value_is_returned() -> None:
    answers = iter([None, 0, [], "ready"])
    assert until(lambda: next(answers), 5, "an answer", interval=0) == "ready"


def test_the_failure_says_what_was_waited_for_and_what_was_seen_last() -> None:
    counter = itertools.count()
    with pytest.raises(WaitTimeoutError) as info:
        until(lambda: next(counter) > 10**9 and None, 0.05, "the queue to drain", interval=0.01)
    message = str(info.value)
    assert message.startswith("waited for the queue to drain: not within 0.05s; last observed: False")
    assert isinstance(info.value, AssertionError)


def test_the_last_value_is_worded_by_describe() -> None:
    with pytest.raises(WaitTimeoutError, match=r"last observed: 2 events: a, b$"):
        until(lambda: [], 0, "c", describe=lambda _: "2 events: a, b")


def test_an_ignored_exception_is_not_yet_and_is_what_was_seen() -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("refused")
        return "up"

    assert until(flaky, 5, "the server", interval=0, ignore=(ConnectionError,)) == "up"
    with pytest.raises(WaitTimeoutError, match=r"last observed: ConnectionRefusedError: nope$"):
        until(lambda: (_ for _ in ()).throw(ConnectionRefusedError("nope")), 0, "x", ignore=(ConnectionError,))


def test_an_exception_not_ignored_ends_the_wait_at_once() -> None:
    with pytest.raises(KeyError):
        until(lambda: {}["k"], 60, "a key")


def test_abort_gives_up_early_with_its_reason() -> None:
    with pytest.raises(WaitTimeoutError, match=r"waited for the daemon: gave up: exited with 3; last observed: None"):
        until(lambda: None, 60, "the daemon", abort=lambda: "exited with 3")


def test_detail_is_read_only_on_failure_and_the_error_type_is_the_callers() -> None:
    class StackError(RuntimeError):
        pass

    read = []

    def tail() -> str:
        read.append(1)
        return "the log's tail"

    assert until(lambda: True, 1, "x", detail=tail) is True
    assert read == []
    with pytest.raises(StackError) as info:
        until(lambda: False, 0, "x", detail=tail, error=StackError)
    assert str(info.value) == "waited for x: not within 0s; last observed: False\nthe log's tail"
