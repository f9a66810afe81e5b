import pytest

from rag.config import DEFAULT_MODEL, Settings, resolve_model_path
from rag.errors import ConfigError


def test_defaults_validate():
    s = Settings()
    assert s.model == DEFAULT_MODEL and s.k >= 1 and s.chunk_overlap < s.chunk_size


def test_env_then_overrides():
    s = Settings.load(
        {"k": 7, "chunk_size": None}, env={"RAG_K": "3", "RAG_CHUNK_SIZE": "200", "RAG_SENTENCE_VECTORS": "no"}
    )
    assert (s.k, s.chunk_size, s.sentence_vectors) == (7, 200, False)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"k": 0}, "k must be"),
        ({"chunk_size": 100, "chunk_overlap": 100}, "chunk_overlap"),
        ({"abstain_threshold": 1.5}, "abstain_threshold"),
        ({"retriever": "magic"}, "retriever must be one of"),
        ({"model": " "}, "model must be"),
    ],
)
def test_invalid_settings_are_refused(changes, match):
    with pytest.raises(ConfigError, match=match):
        Settings.load(changes, env={})


def test_bad_env_value_names_the_variable():
    with pytest.raises(ConfigError, match="RAG_K="):
        Settings.load(env={"RAG_K": "many"})


def test_round_trip_and_unknown_keys():
    s = Settings(k=9)
    assert Settings.from_dict({**s.to_dict(), "future_key": 1}) == s
    with pytest.raises(ConfigError, match="unknown setting"):
        Settings.load({"nope": 1}, env={})


def test_default_model_resolves_to_the_bundled_copy(tmp_path):
    path = resolve_model_path(DEFAULT_MODEL)
    assert path.endswith("model") and (__import__("pathlib").Path(path) / "config.json").exists()
    assert resolve_model_path(str(tmp_path)) == str(tmp_path)
