"""The request guard itself: a page that asks an outside host is caught."""

from __future__ import annotations


def test_guard_blocks_outside_host(browser_context):
    guard = browser_context.request_guard
    already_blocked = len(guard.blocked)
    tab = browser_context.new_page()
    try:
        # The .invalid top-level domain never resolves, and the router aborts
        # the request before any lookup, so nothing is sent.
        with tab.expect_event("requestfailed") as failed:
            tab.set_content('<img src="http://cdn.example.invalid/pixel.png">')
        assert failed.value.url == "http://cdn.example.invalid/pixel.png"
        assert guard.blocked[already_blocked:] == ["http://cdn.example.invalid/pixel.png"]
    finally:
        tab.close()
        # Forget the deliberate request so later tests start from a clean record.
        del guard.blocked[already_blocked:]
