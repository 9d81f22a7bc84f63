"""Fixtures of the notify tests: a real local HTTP server recording what channels POST."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from notify_http_server import RecordingServer, start_recording_server


@pytest.fixture
def http_server() -> Iterator[RecordingServer]:
    recorder = start_recording_server()
    yield recorder
    recorder.server.shutdown()
    recorder.server.server_close()
