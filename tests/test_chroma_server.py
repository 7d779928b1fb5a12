"""The same knowledge base on a real Chroma server (`chroma run`) selected by CHROMA_HOST/CHROMA_PORT."""

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assistant.retrieval.knowledge import KnowledgeBase
from tests.conftest import make_settings

CHROMA = Path(sys.executable).parent / "chroma"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def chroma_server(tmp_path):
    if not CHROMA.exists():
        pytest.fail(f"{CHROMA} is missing: chromadb's server CLI should come with the install")
    port = free_port()
    process = subprocess.Popen([str(CHROMA), "run", "--path", str(tmp_path / "server"), "--host", "127.0.0.1",
                                "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    yield port
    process.terminate()
    process.wait(timeout=10)


def test_knowledge_base_on_a_chroma_server(tmp_path, chroma_server):
    knowledge = tmp_path / "knowledge"
    knowledge.mkdir()
    shutil.copy(Path(__file__).parents[1] / "knowledge" / "lora-qlora-peft.md", knowledge)
    settings = make_settings(tmp_path / "data", knowledge_dir=knowledge, chroma_host="127.0.0.1",
                             chroma_port=chroma_server)
    first = KnowledgeBase(settings).sync()
    assert first.added == ["knowledge/lora-qlora-peft.md"] and first.chunks_embedded > 3
    assert KnowledgeBase(settings).sync().chunks_embedded == 0
    assert "low-rank" in KnowledgeBase(settings).search("What is LoRA?")[0].text.lower()
    assert not (tmp_path / "data" / "chroma").exists(), "the embedded store was used instead of the server"
