"""Settings: offline defaults, env and .env overrides, and readable errors that never echo values."""

import pytest

from training.base.settings import EMBEDDED, Settings, SettingsError, load_settings


def test_defaults_are_offline_and_embedded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no .env here
    settings = load_settings()
    assert settings.effective_backend == "local"
    assert settings.base_model == EMBEDDED
    assert settings.chroma_host is None
    assert settings.model_cache_dir == settings.data_dir / "cache"


def test_openai_key_or_base_url_switch_auto_backend(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-1234567890")
    assert load_settings().effective_backend == "openai"
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
    assert load_settings().effective_backend == "openai"
    monkeypatch.setenv("TUTOR_CHAT_BACKEND", "local")
    assert load_settings().effective_backend == "local"


def test_dotenv_file_is_read(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("CHROMA_HOST=chroma.internal\nCHROMA_PORT=9000\nTUTOR_DATA_DIR=/srv/tutor\n"
                                   "TUTOR_BASE_MODEL=/models/smol\nTUTOR_TOP_K=6\n")
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert (settings.chroma_host, settings.chroma_port) == ("chroma.internal", 9000)
    assert str(settings.data_dir) == "/srv/tutor"
    assert settings.base_model == "/models/smol"
    assert settings.top_k == 6


def test_blank_optional_values_mean_unset(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_BASE_URL", "  ")
    monkeypatch.setenv("CHROMA_HOST", "")
    settings = load_settings()
    assert settings.openai_base_url is None and settings.chroma_host is None


@pytest.mark.parametrize("name, value, expected", [
    ("CHROMA_PORT", "99999999", "CHROMA_PORT"),
    ("TUTOR_TEMPERATURE", "hot", "TUTOR_TEMPERATURE"),
    ("TUTOR_CHAT_BACKEND", "sk-oops-pasted-key-here", "TUTOR_CHAT_BACKEND"),
])
def test_invalid_values_name_the_variable_not_the_value(monkeypatch, tmp_path, name, value, expected):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert expected in str(error.value)
    assert value not in str(error.value)


def test_describe_masks_the_key(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value-123456")
    shown = load_settings().describe()
    assert "sk-secret-value-123456" not in str(shown)
    assert shown["openai_api_key"] == "set (hidden)"
