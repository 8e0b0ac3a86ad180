"""Incremental reading of a growing events.jsonl by byte offset.

`core.runs.events.read_events` reads from a byte offset but cannot say where it stopped,
so the follower reads whole bytes up to the last newline itself and keeps that offset.
A line still being written (no trailing newline yet) is left for the next poll.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Cap one poll's read so a huge backlog (reattaching to a long run) is consumed in slices
# and the GUI thread never parses megabytes in one go.
MAX_CHUNK_BYTES = 512 * 1024


def read_new_events(
    path: str | Path, offset: int, max_bytes: int = MAX_CHUNK_BYTES
) -> tuple[list[dict[str, Any]], int]:
    """Events from complete lines after `offset`, and the offset after the last of them."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            chunk = fh.read(max_bytes)
    except FileNotFoundError:
        return [], offset
    cut = chunk.rfind(b"\n") + 1
    if cut == 0:
        return [], offset
    events = []
    for line in chunk[:cut].splitlines():
        try:
            event = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue  # a line cut short by a kill; the writer starts a fresh line after it
        if isinstance(event, dict) and "type" in event:
            events.append(event)
    return events, offset + cut
