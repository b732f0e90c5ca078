"""Settings for the whole suite."""

from __future__ import annotations

import contextlib

with contextlib.suppress(ImportError):  # the browser tests skip where Playwright is missing
    from playwright.sync_api import expect

    # CI runs the suite on two shared cores with two workers: a page that draws in 1 s alone can take
    # several under load. The expectations wait up to 20 s (Playwright's default is 5 s); a passing
    # expectation returns as soon as it holds, so this lengthens only a failure.
    expect.set_options(timeout=20_000)
