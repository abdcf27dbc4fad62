"""Progress bars for long work, drawn on stderr: the CLI's commands and the demo's steps take them from here."""

from __future__ import annotations

import sys


def bar(label: str):
    """A progress-bar factory for the library's ``progress`` arguments: ``bar(label)(total)`` is a click progress
    bar of ``total`` items, with the current item's name (cut to 40 characters), the count and the ETA."""
    import click

    def make(total: int):
        return click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True, show_eta=True,
                                 item_show_func=lambda item: item[:40] if item else None)
    return make
