"""The embedded llama.cpp server's life cycle, and how jobs find it."""

import os

import pytest
import requests

from evoselfcode import embedded
from evoselfcode.config import Api, Embedded


def test_jobs_get_the_configured_url_or_a_clear_error(tmp_path):
    assert embedded.resolve_base_url(Api(base_url="http://h:1"), tmp_path / "s.json") == "http://h:1"
    with pytest.raises(embedded.EmbeddedServerError, match="no embedded server is running"):
        embedded.resolve_base_url(Api(base_url="embedded"), tmp_path / "s.json")


@pytest.mark.embedded
def test_start_reuse_and_stop(tmp_path):
    state, log = tmp_path / "state.json", tmp_path / "server.log"
    cfg = Embedded(n_threads=2, cache_dir=os.path.expanduser("~/.cache/evoselfcode"))
    url = embedded.start(cfg, log_path=log, state_file=state)
    try:
        assert url.startswith("http://127.0.0.1:")
        assert embedded.resolve_base_url(Api(base_url="embedded"), state) == url
        assert requests.get(f"{url}/v1/models", timeout=5).status_code == 200
        assert embedded.start(cfg, log_path=log, state_file=state) == url  # a live server is reused
        pid = embedded.read_state(state)["pid"]
    finally:
        embedded.stop(state)
    assert not state.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.embedded
def test_the_model_file_is_verified_and_repaired(tmp_path):
    cfg = Embedded(cache_dir=str(tmp_path))
    path = embedded.model_path(cfg)
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.seek(1000)
        fh.write(b"corrupt")
    assert embedded.model_path(cfg) == path
    assert path.stat().st_size == size
    with open(path, "rb") as fh:
        fh.seek(1000)
        assert fh.read(7) != b"corrupt"
