"""The one catalog of texts (training/base/texts/<language>.toml, read by training/base/texts.py): every language
has the same namespaces and keys with the same {fields}, the plural forms its language needs, and no English left
in Ukrainian; plural forms come out right; a locale's or a browser's tag picks the language."""

import re
import string

import pytest
from babel import Locale

from training.base.phrases import Phrases
from training.base.texts import catalog, language_from_env, language_of, languages, text

# Ukrainian texts that are names, the same in every language: a command typed as it is.
NAMES = {("starters", "prepare.message")}


def forms(template) -> list[str]:
    return list(template.values()) if isinstance(template, dict) else [template]


def fields(template: str) -> set[tuple[str, str]]:
    return {(name, spec) for _, name, spec, _ in string.Formatter().parse(template) if name is not None}


def entries(language: str):
    for namespace, table in catalog(language).items():
        for key, template in table.items():
            yield namespace, key, template


def test_the_catalog_speaks_english_first_and_ukrainian():
    assert languages() == ("en", "uk")
    assert len(list(entries("en"))) > 400


@pytest.mark.parametrize("language", [language for language in languages() if language != "en"])
def test_every_language_has_the_same_keys_with_the_same_fields(language):
    english, other = catalog("en"), catalog(language)
    assert set(other) == set(english)
    for namespace, table in english.items():
        assert set(other[namespace]) == set(table), (namespace, set(other[namespace]) ^ set(table))
        for key, template in table.items():
            wanted = fields(forms(template)[-1])
            for form in forms(template) + forms(other[namespace][key]):
                assert fields(form) == wanted, (namespace, key, form)


@pytest.mark.parametrize("language", languages())
def test_plural_tables_have_the_forms_their_language_needs(language):
    needed = Locale.parse(language).plural_form.tags | {"other"}
    plurals = [(namespace, key, t) for namespace, key, t in entries(language) if isinstance(t, dict)]
    assert len(plurals) >= 7
    for namespace, key, template in plurals:
        assert set(template) == needed, (namespace, key)
        assert all(("count", "") in fields(form) or ("count", ",") in fields(form) for form in template.values())


def test_no_english_is_left_in_ukrainian():
    for namespace, key, template in entries("uk"):
        for form in forms(template):
            words = re.sub(r"`[^`]*`|\{[^{}]*\}", " ", form)
            if re.search(r"[a-z]", words, re.I) and (namespace, key) not in NAMES:
                assert re.search(r"[а-яіїєґ]", words, re.I), f"[{namespace}] {key} is English: {form!r}"
    for namespace, key in NAMES:  # a name on the list is still in the catalog
        assert key in catalog("uk")[namespace]


@pytest.mark.parametrize("count, ukrainian, english", [
    (1, "1 приклад", "1 example"), (2, "2 приклади", "2 examples"), (4, "4 приклади", "4 examples"),
    (5, "5 прикладів", "5 examples"), (11, "11 прикладів", "11 examples"), (21, "21 приклад", "21 examples"),
    (22, "22 приклади", "22 examples"), (25, "25 прикладів", "25 examples")])
def test_plural_forms_follow_each_languages_rules(count, ukrainian, english):
    assert text("chat.train.dataset_button", "uk", name="ds", count=count) == f"ds ({ukrainian})"
    assert text("chat.train.dataset_button", "en", name="ds", count=count) == f"ds ({english})"


def test_a_phrases_table_reads_its_namespace_and_falls_back_to_english():
    quotas = Phrases("quotas")
    assert list(quotas) == list(languages()) and "fr" not in quotas
    assert quotas("queued", "uk", count=3).startswith("У вас уже 3 завдання навчання")
    assert quotas("queued", "uk", count=5).startswith("У вас уже 5 завдань навчання")
    assert quotas("queued", "fr", count=1) == quotas("queued", "en", count=1)
    assert quotas("queued", "en", count=1).startswith("You have 1 training job waiting")
    prepare, fields = Phrases("prepare"), dict(source="a.csv", rows=1200, usable=1190, duplicates=10, skipped=0)
    assert prepare("read", "uk", **fields).startswith("`a.csv`: прочитано рядків **1,200**")
    assert prepare("read", "fr", **fields) == prepare("read", "en", **fields)


def test_the_welcome_names_the_explain_button_by_its_own_label():
    for language in languages():
        button = text("chat.explain.button", language)
        assert button in text("chat.app.welcome", language, model="m", explain=button)
    assert "Explain my run" not in text("chat.app.welcome", "uk", model="m", explain=text("chat.explain.button", "uk"))


@pytest.mark.parametrize("environment, language", [
    ({"LANG": "uk_UA.UTF-8"}, "uk"), ({"LANG": "de_DE.UTF-8"}, "en"), ({}, "en"),
    ({"LANG": "en_US.UTF-8", "LC_ALL": "uk_UA.UTF-8"}, "uk"), ({"LANG": "uk_UA.UTF-8", "LC_MESSAGES": "C"}, "en")])
def test_the_locale_picks_a_command_lines_language(monkeypatch, environment, language):
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert language_from_env() == language
    assert (language_of("uk-UA"), language_of("en-US"), language_of(None)) == ("uk", "en", "en")
