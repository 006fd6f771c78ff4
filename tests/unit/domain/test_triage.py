"""Triage routing: the threshold and the audit draw, fixed per recording."""

from __future__ import annotations

import math

from syncd.config import ReviewSettings
from syncd.domain.recording import syncd_id
from syncd.domain.triage import Mode, audit_draw, route


def test_routing_follows_the_threshold_and_the_draw_is_fixed_per_recording() -> None:
    off, on = ReviewSettings(), ReviewSettings(auto_accept_above=0.9, audit_rate=0.25)
    sid = syncd_id("b", "a.mp3", "e1")
    assert route(off, sid, 0.99) == Mode.REVIEW
    assert route(on, sid, 0.89) == Mode.REVIEW and route(on, sid, None) == Mode.REVIEW
    assert route(on, sid, 0.9) in (Mode.AUTO, Mode.AUDIT)
    assert audit_draw(sid) == audit_draw(sid) and {route(on, sid, 0.95) for _ in range(5)} == {route(on, sid, 0.9)}
    n = 20_000
    drawn = sum(route(on, syncd_id("b", f"k{i}.mp3", "e"), 0.95) == Mode.AUDIT for i in range(n))
    assert abs(drawn - n * 0.25) < 4 * math.sqrt(n * 0.25 * 0.75)
    assert all(
        route(ReviewSettings(auto_accept_above=0.5, audit_rate=1.0), f"s{i}", 0.6) == Mode.AUDIT for i in range(50)
    )
