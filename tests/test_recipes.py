"""RecipeNLG rows -> chat examples: the bundled sample, the cookbook's exact format, and bad CSVs."""

import json
from pathlib import Path

import pytest

from training.data.recipes import SAMPLE_CSV, Recipe, RowProblem, SourceError, read_recipenlg_csv, to_chat_example

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
HEADER = ",title,ingredients,directions,link,source,NER\n"


def write(tmp_path, body: bytes | str, name="recipes.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(body if isinstance(body, bytes) else body.encode("utf-8"))
    return path


def test_the_bundled_sample_is_large_varied_and_consistent():
    recipes = list(read_recipenlg_csv(SAMPLE_CSV))
    assert all(isinstance(r, Recipe) for r in recipes), [str(r) for r in recipes if isinstance(r, RowProblem)][:3]
    assert len(recipes) >= 200
    assert len({r.title for r in recipes}) == len(recipes)
    for recipe in recipes:
        lines = " ".join(recipe.ingredients).lower()
        assert all(item == item.lower() and item in lines for item in recipe.ner), recipe.title
        assert len(set(recipe.ner)) == len(recipe.ner), recipe.title


@pytest.mark.skipif(not SHARED.exists(), reason="the cookbook split is not beside this checkout")
def test_chat_examples_match_the_cookbook_format_exactly():
    compared = 0
    for line in (SHARED / "recipes_cookbook_train.jsonl").read_text().splitlines()[:20]:
        cookbook = json.loads(line)
        user = cookbook["messages"][1]["content"]
        title = user.split("\n\n")[0].removeprefix("Title: ")
        ingredients = json.loads(user.split("Ingredients: ")[1].split("\n\nGeneric ingredients: ")[0])
        ner = json.loads(cookbook["messages"][2]["content"])
        ours = to_chat_example(Recipe(title, tuple(ingredients), tuple(ner), 0))
        if all(s.isascii() for s in (title, *ingredients, *ner)):  # we keep non-ASCII readable, not \\u-escaped
            assert ours == cookbook
            compared += 1
    assert compared >= 15


def test_bad_rows_are_reported_by_line_and_good_rows_survive(tmp_path):
    body = (HEADER.encode()
            + b'0,Good One,"[""1 c. sugar""]","[""Mix.""]",x,y,"[""sugar""]"\n'
            + b'1,Too Few,"[""1 egg""]"\n'
            + b'2,Bad Json,"[1 c. flour","[""Mix.""]",x,y,"[""flour""]"\n'
            + b'3,Bad \xff\xfe Bytes,"[""salt""]","[""Mix.""]",x,y,"[""salt""]"\n'
            + b'4,,"[""salt""]","[""Mix.""]",x,y,"[""salt""]"\n'
            + b'5,Not A List,"{""a"": 1}","[""Mix.""]",x,y,"[""salt""]"\n'
            + b'6,Good Two,"[""2 eggs""]","[""Beat.""]",x,y,"[""eggs""]"\n')
    items = list(read_recipenlg_csv(write(tmp_path, body)))
    good = [i.title for i in items if isinstance(i, Recipe)]
    problems = {i.line: i.problem for i in items if isinstance(i, RowProblem)}
    assert good == ["Good One", "Good Two"]
    assert problems == {3: "expected 7 fields, found 3", 4: "ingredients is not a valid JSON list",
                        5: "contains bytes that are not valid UTF-8", 6: "title is empty",
                        7: "ingredients must be a non-empty JSON list of strings"}


@pytest.mark.parametrize("body, message", [
    (b"", "is empty"),
    (b"title,ingredients\nA,[]\n", "missing column(s) NER"),
    (b"name;items;tags\n", "missing column(s) title, ingredients, NER"),
])
def test_unusable_sources_say_why(tmp_path, body, message):
    with pytest.raises(SourceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        list(read_recipenlg_csv(write(tmp_path, body)))


def test_progress_is_reported_while_streaming(tmp_path):
    rows = "".join(f'{i},T{i},"[""1 egg""]","[""Mix.""]",x,y,"[""egg""]"\n' for i in range(45_000))
    path = write(tmp_path, HEADER + rows)
    seen = []
    assert sum(1 for _ in read_recipenlg_csv(path, progress=lambda *p: seen.append(p))) == 45_000
    assert [p[0] for p in seen] == [20_000, 40_000, 45_000]
    assert seen[-1][1] == seen[-1][2] == path.stat().st_size
    assert all(0 < p[1] <= p[2] for p in seen)
