"""The progress bar draws when enabled and stays silent otherwise."""
import io

from common.progress import Progress


def test_draws_to_completion_when_enabled():
    out = io.StringIO()
    with Progress(4, "convert", stream=out, enabled=True) as bar:
        for _ in range(4):
            bar.update()
    text = out.getvalue()
    assert "convert [" in text and "100.0%" in text and text.endswith("\n")


def test_silent_when_disabled():
    out = io.StringIO()
    with Progress(4, stream=out, enabled=False) as bar:
        bar.update(4)
    assert out.getvalue() == ""
