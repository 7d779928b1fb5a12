"""`tutor serve` is safe by default: a key from settings (.env too), no foreign content types or Hosts, bodies
limited before they are read (memory measured), wrong types and values answered with a 400 sentence, file ids
that are never paths, a context-sized max_tokens, and a trainer killed mid-job reported on the next retrieve."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import httpx
import openai
import pytest

from assistant.server.app import FineTuningServer, allowed_hosts
from tests.conftest import MODEL_CACHE, make_settings
from tests.http_server import ServerThread
from training.base.registry import registry_for
from training.base.settings import load_settings
from training.data.prepare import prepare
from training.data.recipes import SAMPLE_CSV

KEY = "sk-serve-test-0123456789abcdef"


@pytest.fixture
def settings(tmp_path, tiny_model_dir):
    return make_settings(tmp_path / "server", base_model=str(tiny_model_dir), serve_api_key=KEY, max_upload_mb=2)


@pytest.fixture
def server(settings):
    with ServerThread(FineTuningServer(settings, allowed_hosts("127.0.0.1", [])).app) as http:
        yield http


def api(server, key=KEY) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=server.base_url, max_retries=0)


def post(server, path: str, body: str | bytes, content_type: str = "application/json", **headers) -> httpx.Response:
    return httpx.post(f"{server.base_url}{path}", content=body, headers={"content-type": content_type,
                                                                          "authorization": f"Bearer {KEY}", **headers})


def test_a_key_is_required_when_set_and_read_from_dotenv(tmp_path, monkeypatch, tiny_model_dir, server):
    assert httpx.get(f"{server.base_url}/models").status_code == 401
    with pytest.raises(openai.AuthenticationError, match="Incorrect API key"):
        api(server, key="sk-wrong-0000000000").models.list()
    assert api(server).models.list().data[0].id == tiny_model_dir.name

    (tmp_path / ".env").write_text(f"TUTOR_SERVE_API_KEY=sk-from-dotenv-123456789\nTUTOR_DATA_DIR={tmp_path / 'env'}\n")
    monkeypatch.chdir(tmp_path)
    from_dotenv = load_settings(cache_dir=MODEL_CACHE, base_model=str(tiny_model_dir))
    with ServerThread(FineTuningServer(from_dotenv).app) as http:
        assert httpx.get(f"{http.base_url}/models").status_code == 401
        assert api(http, key="sk-from-dotenv-123456789").models.list().data


def test_only_json_and_multipart_posts_and_only_our_hosts(server):
    body = json.dumps({"model": "x", "messages": [{"role": "user", "content": "hi"}]})
    for kind in ("text/plain", "application/x-www-form-urlencoded", ""):
        answer = post(server, "/chat/completions", body, content_type=kind)
        assert answer.status_code == 415 and "application/json" in answer.json()["error"]["message"]
    assert post(server, "/models", "", Host="evil.example:8100").status_code == 400  # a rebinding page's Host
    assert httpx.get(f"{server.base_url}/models", headers={"authorization": f"Bearer {KEY}",
                                                           "host": "evil.example"}).status_code == 400


@pytest.mark.parametrize("body, field", [
    ('{"model": "m", "training_file": "file-abc", "seed": 1e400}', "seed"),
    ('{"model": "m", "training_file": "file-abc", "hyperparameters": "fast"}', "hyperparameters"),
    ('{"model": 5, "training_file": "file-abc"}', "model"),
    ('{"model": "m", "training_file": "file-abc", "hyperparameters": {"n_epochs": -3}}', "hyperparameters.n_epochs"),
    ('{"model": "m", "training_file": "../../etc/passwd"}', "training_file"),
    ('{"model": "m", "training_file": "file-abc", "suffix": "../x"}', "suffix"),
    ('[1, 2]', "value"),
    ('{"model": "m", "training_file": "file-abc"', None),  # not JSON at all
])
def test_wrong_types_and_values_are_a_400_sentence(server, body, field):
    answer = post(server, "/fine_tuning/jobs", body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"].startswith("Invalid request:")
    if field:
        assert field in error["message"]


def test_file_ids_are_looked_up_never_made_into_paths(server, tmp_path):
    for file_id in ("..%2F..%2Fetc%2Fpasswd", "file-..", "registry.sqlite", "file-0000"):
        assert httpx.get(f"{server.base_url}/files/{file_id}",
                         headers={"authorization": f"Bearer {KEY}"}).status_code == 404
    answer = post(server, "/fine_tuning/jobs", json.dumps({"model": "m", "training_file": "file-doesnotexist"}))
    assert answer.status_code == 400 and "No such file" in answer.json()["error"]["message"]


def test_max_tokens_and_the_prompt_must_fit_the_context(server, tiny_model_dir):
    client = api(server)
    with pytest.raises(openai.BadRequestError, match="maximum context length is 2048 tokens"):
        client.chat.completions.create(model=tiny_model_dir.name, messages=[{"role": "user", "content": "hi"}],
                                       max_tokens=10**6)
    with pytest.raises(openai.BadRequestError, match="maximum context length"):
        client.chat.completions.create(model=tiny_model_dir.name, max_tokens=5,
                                       messages=[{"role": "user", "content": "word " * 5000}])
    reply = client.chat.completions.create(model=tiny_model_dir.name, max_tokens=3,
                                           messages=[{"role": "user", "content": "hi"}])
    assert reply.usage.completion_tokens <= 3


def test_a_trainer_killed_mid_job_is_failed_on_the_next_retrieve(server, settings, tmp_path, tiny_model_dir):
    files = prepare(SAMPLE_CSV, tmp_path / "dataset", train=12, validation=4, test=0, seed=5).files
    client = api(server)
    uploaded = client.files.create(file=open(files["train"], "rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=tiny_model_dir.name, training_file=uploaded.id,
                                         hyperparameters={"n_epochs": 50, "batch_size": 2})
    registry = registry_for(settings)
    run_id = job.id.removeprefix("ftjob-")
    deadline = time.time() + 120
    while not any(e.type == "metrics" for e in client.fine_tuning.jobs.list_events(job.id)) and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(int(registry.run(run_id).handle), signal.SIGKILL)
    deadline = time.time() + 30
    while (status := client.fine_tuning.jobs.retrieve(job.id).status) == "running" and time.time() < deadline:
        time.sleep(0.2)
    finished = client.fine_tuning.jobs.retrieve(job.id)
    assert status == "failed" and "stopped unexpectedly" in finished.error.message


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _peak_rss_mb(pid: int) -> float:
    return int(re.search(r"VmHWM:\s+(\d+)", open(f"/proc/{pid}/status").read()).group(1)) / 1024


def test_an_oversized_upload_is_refused_with_bounded_memory(tmp_path):
    """`tutor serve` in its own process, uploads limited to 2 MB: a 300 MB upload, declared or streamed without a
    length, is refused with a 413 while the server's peak memory barely moves."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "TUTOR_"))}
    env.update(TUTOR_DATA_DIR=str(tmp_path / "data"), TUTOR_SERVE_API_KEY=KEY, TUTOR_MAX_UPLOAD_MB="2")
    process = subprocess.Popen([sys.executable, "-m", "assistant.cli.main", "serve", "--port", str(port)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url, headers = f"http://127.0.0.1:{port}/v1/files", {"authorization": f"Bearer {KEY}"}
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/v1/models", headers=headers, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        before = _peak_rss_mb(process.pid)
        boundary = b"tutorboundary"
        head = (b"--" + boundary + b'\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n--' +
                boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="big.jsonl"\r\n\r\n')
        kind = {"content-type": f"multipart/form-data; boundary={boundary.decode()}"}

        def body():
            yield head
            for _ in range(300):
                yield b"x" * 2**20

        declared = httpx.post(url, headers={**headers, **kind, "content-length": str(300 * 2**20 + len(head))},
                              content=body(), timeout=60)
        # A wrong key is answered before the body is read: the 300 MB never arrive (the server hangs up).
        wrong = {**kind, "authorization": "Bearer sk-wrong", "content-length": str(300 * 2**20 + len(head))}
        with socket.create_connection(("127.0.0.1", port)) as raw:
            raw.sendall(b"POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
                        "".join(f"{k}: {v}\r\n" for k, v in wrong.items()).encode() + b"\r\n" + head)
            assert raw.recv(200).split(b"\r\n")[0] == b"HTTP/1.1 401 Unauthorized"
        streamed = httpx.post(url, headers={**headers, **kind}, content=body(), timeout=60)
        assert declared.status_code == 413 and streamed.status_code == 413
        assert "2 MB" in streamed.json()["error"]["message"]
        assert _peak_rss_mb(process.pid) - before < 40, "the server held the upload in memory"
        assert not list((tmp_path / "data" / "openai-server" / "files").iterdir()), "nothing kept"
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_without_a_key_pages_of_other_sites_are_refused_multipart_included(tmp_path, tiny_model_dir):
    """A keyless server on loopback: a page elsewhere may send a multipart form without asking the server first,
    so any foreign Origin is refused before the upload is read; the server's own page and non-browser clients
    (no Origin) are served."""
    keyless = make_settings(tmp_path / "keyless", base_model=str(tiny_model_dir), max_upload_mb=2)
    with ServerThread(FineTuningServer(keyless, allowed_hosts("127.0.0.1", [])).app) as http:
        upload = {"files": {"file": ("x.jsonl", b'{"messages": []}\n')}, "data": {"purpose": "fine-tune"}}
        for origin in ("https://evil.example", "http://127.0.0.2:8100", "null"):
            refused = httpx.post(f"{http.base_url}/files", headers={"origin": origin}, **upload)
            assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden_origin", origin
        assert not list((tmp_path / "keyless" / "openai-server" / "files").iterdir()), "nothing was kept"
        own = f"http://127.0.0.1:{http.port}"
        assert httpx.get(f"{http.base_url}/models", headers={"origin": own}).status_code == 200
        assert httpx.get(f"{http.base_url}/models").status_code == 200


def test_it_refuses_to_listen_beyond_loopback_without_a_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "TUTOR_"))}
    env["TUTOR_DATA_DIR"] = str(tmp_path / "data")
    result = subprocess.run([sys.executable, "-m", "assistant.cli.main", "serve", "--host", "0.0.0.0", "--port",
                             str(_free_port())], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1 and "without a key: set TUTOR_SERVE_API_KEY" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("field", "value", "valid"), [
    ("suffix", "../x", False), ("suffix", "recipes-2", True), ("seed", -1, False), ("seed", 2**31, False),
    ("seed", 0, True), ("n_epochs", 51, False), ("n_epochs", 50, True), ("batch_size", 0, False),
    ("learning_rate_multiplier", 0, False), ("learning_rate_multiplier", "auto", True)])
def test_a_job_request_is_checked_by_the_openai_backends_own_types(field, value, valid):
    """The server's job request and `tutor train --backend openai` accept and refuse the same values."""
    from pydantic import ValidationError

    from assistant.server.schemas import JobCreate
    from training.backends.openai_api import OpenAIJobConfig
    from training.local.config import ConfigError

    hyperparameter = field not in ("suffix", "seed")
    body = {"model": "m", "training_file": "file-abc",
            **({"hyperparameters": {field: value}} if hyperparameter else {field: value})}
    outcomes = []
    for check, refusal in ((lambda: JobCreate.model_validate(body), ValidationError),
                           (lambda: OpenAIJobConfig(**{field: value}), ConfigError)):
        try:
            check()
            outcomes.append(True)
        except refusal:
            outcomes.append(False)
    assert outcomes == [valid, valid]
