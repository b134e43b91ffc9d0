"""The harness itself: Chromium starts, the static site serves, WebCrypto is there."""


def test_chromium_runs_the_app_files_in_a_secure_context(module_page):
    assert module_page.evaluate("isSecureContext") is True
    assert module_page.evaluate("typeof crypto.subtle.generateKey") == "function"
    assert module_page.evaluate("typeof DecompressionStream") == "function"
