"""Loaders on tiny files written per test: every format, the split rules, and every bad-input case."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from rationale_commons.errors import DataError
from rationale_commons.loaders import (
    ColumnMapping,
    apply_rationales,
    load_data,
    load_documents,
    load_eraser,
    load_hub,
    load_table,
    read_annotations,
)

ROWS = [
    {"text": "a fine film", "label": "pos", "q": "good?", "env": "e0", "r": [0, 1, 0]},
    {"text": "dull and slow", "label": "neg", "q": "good?", "env": "e1", "r": [[0, 1], [2, 3]]},
    {"text": "great", "label": "pos", "q": "good?", "env": "e0", "r": []},
]
MAPPING = ColumnMapping(query="q", env="env", rationale="r")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_delimited(path: Path, rows: list[list[str]], sep: str) -> Path:
    path.write_text("".join(sep.join(r) + "\n" for r in rows), encoding="utf-8")
    return path


def table_rows(rows=ROWS) -> list[list[str]]:
    return [["text", "label", "q", "env", "r"]] + [
        [r["text"], r["label"], r["q"], r["env"], json.dumps(r["r"])] for r in rows
    ]


# ---------------------------------------------------------------- tables


def check_rows(examples):
    assert [ex.words for ex in examples] == [
        ["a", "fine", "film"],
        ["dull", "and", "slow"],
        ["great"],
    ]
    assert [ex.label for ex in examples] == ["pos", "neg", "pos"]
    assert [ex.rationale for ex in examples] == [[0, 1, 0], [1, 0, 1], [0]]
    assert {ex.query for ex in examples} == {"good?"}
    assert [ex.env for ex in examples] == ["e0", "e1", "e0"]


@pytest.mark.parametrize(
    "fmt", ["jsonl", "json", "json-wrapped", "json-lines", "csv", "tsv", "parquet"]
)
def test_every_table_format_reads_the_same_rows(tmp_path, fmt):
    folder = tmp_path / "d"
    folder.mkdir()
    if fmt == "jsonl":
        write_jsonl(folder / "test.jsonl", ROWS)
    elif fmt == "json":
        (folder / "test.json").write_text(json.dumps(ROWS))
    elif fmt == "json-wrapped":
        (folder / "test.json").write_text(json.dumps({"version": 1, "data": ROWS}))
    elif fmt == "json-lines":  # JSON Lines saved as .json, as `datasets` writes it
        write_jsonl(folder / "test.json", ROWS)
    elif fmt in ("csv", "tsv"):  # csv.writer quotes the JSON cells that hold commas
        with (folder / f"test.{fmt}").open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle, delimiter="," if fmt == "csv" else "\t").writerows(table_rows())
    else:
        pq = pytest.importorskip("pyarrow.parquet")
        import pyarrow as pa

        pq.write_table(
            pa.Table.from_pylist([{**r, "r": json.dumps(r["r"])} for r in ROWS]),
            folder / "test.parquet",
        )
    splits = load_data(folder, MAPPING)
    assert splits.name == "d" and splits.train == [] and splits.val == []
    check_rows(splits.test)
    assert [ex.id for ex in splits.test] == ["test-0", "test-1", "test-2"]


def test_single_file_is_train_with_a_deterministic_carved_val(tmp_path):
    rows = [{"text": f"doc {i}", "label": str(i % 2)} for i in range(50)]
    path = write_jsonl(tmp_path / "reviews.jsonl", rows)
    a = load_data(path)
    assert a.name == "reviews" and (len(a.train), len(a.val), len(a.test)) == (45, 5, 0)
    assert a == load_data(path)  # same seed, same split
    assert {ex.id for ex in a.train} | {ex.id for ex in a.val} == {f"train-{i}" for i in range(50)}
    assert [ex.id for ex in a.val] == sorted(
        (ex.id for ex in a.val), key=lambda s: int(s.split("-")[1])
    )
    b = load_data(path, split_seed=1)
    assert {ex.id for ex in b.val} != {ex.id for ex in a.val}
    c = load_data(path, val_fraction=0.0)
    assert (len(c.train), len(c.val)) == (50, 0)
    assert len(load_data(path, val_fraction=0.01).val) == 1  # at least one row
    with pytest.raises(DataError, match="val_fraction"):
        load_data(path, val_fraction=1.0)


def test_folder_of_split_files(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [{"text": f"t {i}", "label": "x"} for i in range(10)])
    write_delimited(tmp_path / "dev.csv", [["text", "label"], ["v one", "x"]], ",")
    write_delimited(tmp_path / "notes.csv", [["a"], ["b"]], ",")  # ignored: not a split name
    splits = load_data(tmp_path)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (
        10,
        1,
        0,
    )  # a val file: nothing carved
    assert splits.val[0].id == "val-0"
    write_jsonl(tmp_path / "train.json", [{"text": "t", "label": "x"}])
    with pytest.raises(DataError, match="two files for the train split"):
        load_data(tmp_path)


def test_folder_without_val_gets_a_carved_val(tmp_path):
    write_delimited(
        tmp_path / "train.tsv", [["text", "label"]] + [[f"t {i}", "x"] for i in range(20)], "\t"
    )
    write_delimited(tmp_path / "test.tsv", [["text", "label"], ["q", "x"]], "\t")
    splits = load_data(tmp_path, val_fraction=0.25)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (15, 5, 1)


def test_headerless_tsv_auto_detected_and_positional(tmp_path):
    path = write_delimited(
        tmp_path / "train.tsv",
        [["Stocks fall again", "Business"], ["Team wins", "Sports"], ["Markets rally", "Business"]],
        "\t",
    )
    auto = load_table(path, val_fraction=0)
    assert [ex.label for ex in auto.train] == ["Business", "Sports", "Business"]
    assert auto.name == tmp_path.name  # a file named after a split takes its folder's name
    positional = load_table(path, ColumnMapping(text=0, label=1), val_fraction=0)
    assert positional.train == auto.train
    # a real header with other names is a header: the missing column is reported
    write_delimited(
        tmp_path / "h.tsv", [["sentence", "sentiment"], ["good", "pos"], ["bad", "neg"]], "\t"
    )
    with pytest.raises(
        DataError, match="missing column 'text'.*available columns: sentence, sentiment"
    ):
        load_table(tmp_path / "h.tsv")
    ok = load_table(
        tmp_path / "h.tsv", ColumnMapping(text="sentence", label="sentiment"), val_fraction=0
    )
    assert [ex.label for ex in ok.train] == ["pos", "neg"]
    with pytest.raises(DataError, match="all names or all positions"):
        load_table(path, ColumnMapping(text="0", label="label"))


def test_csv_quoted_multiline_cells_keep_line_numbers(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text('text,label\n"two\nlines",a\n"x ""quoted""",\n', encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_table(path)
    assert (err.value.line, err.value.field) == (4, "label")
    assert "empty label" in str(err.value)


def test_id_column_and_scalar_labels(tmp_path):
    path = write_jsonl(
        tmp_path / "test.jsonl",
        [{"uid": 7, "text": "a", "label": True}, {"uid": 8, "text": "b", "label": 1.0}],
    )
    splits = load_data(path, ColumnMapping(id="uid"))
    assert [(ex.id, ex.label) for ex in splits.test] == [("7", "True"), ("8", "1")]


# ---------------------------------------------------------------- bad table input


@pytest.mark.parametrize(
    ("content", "line", "field", "message"),
    [
        ('{"text": "a", "label": "x"}\n{"text": "b", "label": \n', 2, None, "malformed JSON"),
        ('{"text": "a", "label": "x"}\n[1, 2]\n', 2, None, "expected a JSON object"),
        (
            '{"text": "a", "label": "x"}\n{"txt": "b", "label": "x"}\n',
            2,
            "text",
            "missing column 'text' for text; available columns: txt, label",
        ),
        ('{"text": "a", "label": "x"}\n{"text": "  ", "label": "x"}\n', 2, "text", "empty text"),
        (
            '{"text": "a", "label": "x"}\n\n{"text": "b", "label": null}\n',
            3,
            "label",
            "empty label",
        ),
        (
            '{"text": "a b", "label": "x", "r": [1, 0, 1]}\n',
            1,
            "r",
            "rationale has 3 entries but the text has 2 words",
        ),
        ('{"text": "a b", "label": "x", "r": [[1, 3]]}\n', 1, "r", "outside"),
        ('{"text": "a b", "label": "x", "r": [1, 2]}\n', 1, "r", "0/1 list per word or a list of"),
        ('{"text": "a b", "label": "x", "r": "not json"}\n', 1, "r", "not a JSON list"),
        (
            '{"text": "a", "label": "x", "id": "k"}\n{"text": "b", "label": "x", "id": "k"}\n',
            2,
            "id",
            "duplicate id 'k'",
        ),
    ],
)
def test_bad_jsonl_rows_name_file_line_and_field(tmp_path, content, line, field, message):
    path = tmp_path / "data.jsonl"
    path.write_text(content, encoding="utf-8")
    columns = (
        ColumnMapping(rationale="r")
        if '"r"' in content
        else ColumnMapping(id="id")
        if '"id"' in content
        else None
    )
    with pytest.raises(DataError) as err:
        load_data(path, columns)
    assert err.value.path == str(path)
    assert (err.value.line, err.value.field) == (line, field)
    assert message in str(err.value)
    assert str(err.value).startswith(f"{path}:{line}: ")


@pytest.mark.parametrize("name", ["empty.jsonl", "empty.csv", "empty.tsv", "empty.json"])
def test_empty_files(tmp_path, name):
    path = tmp_path / name
    path.write_text("[]" if name.endswith(".json") else "", encoding="utf-8")
    with pytest.raises(DataError, match="empty file"):
        load_data(path)


def test_header_only_csv_is_empty_and_ragged_rows_are_named(tmp_path):
    path = write_delimited(tmp_path / "a.csv", [["text", "label"]], ",")
    with pytest.raises(DataError, match="empty file"):
        load_data(path)
    path = write_delimited(
        tmp_path / "b.csv", [["text", "label"], ["x", "y"], ["x", "y", "z"]], ","
    )
    with pytest.raises(DataError, match=r"b.csv:3: expected 2 fields, got 3"):
        load_data(path)


def test_json_and_parquet_errors_name_the_row(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps([{"text": "a", "label": "x"}, {"text": "b"}]))
    with pytest.raises(DataError, match=r"d.json: label: row 1: missing column 'label'"):
        load_data(path)
    path.write_text('[{"text": "a",,}]')
    with pytest.raises(DataError, match=r"d.json:1: malformed JSON"):
        load_data(path)
    bad = tmp_path / "train.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="cannot read Parquet"):
        load_data(bad)


def test_not_utf8(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"text,label\n\xff\xfe,x\n")
    with pytest.raises(DataError, match="not UTF-8"):
        load_data(path)


# ---------------------------------------------------------------- dispatch


def test_load_data_dispatch_errors(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        load_data(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="no such file or folder"):
        load_data("./nowhere/data.jsonl")
    other = tmp_path / "notes.txt"
    other.write_text("hi")
    with pytest.raises(DataError, match="unsupported file type '.txt'"):
        load_data(other)
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DataError, match="not a dataset folder"):
        load_data(tmp_path / "empty_dir")
    (tmp_path / "docs_only" / "docs").mkdir(parents=True)
    with pytest.raises(DataError, match="ERASER folder without"):
        load_data(tmp_path / "docs_only")


def test_hub_name_offline_is_a_clear_data_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(
        DataError, match="cannot load 'no-such-user/no-such-dataset-xyz' with datasets.load_dataset"
    ):
        load_data("no-such-user/no-such-dataset-xyz")


@pytest.mark.slow
def test_load_hub_through_a_local_builder(tmp_path):
    pytest.importorskip("datasets")
    write_delimited(
        tmp_path / "tr.csv", [["sentence", "y"]] + [[f"s {i}", str(i % 2)] for i in range(10)], ","
    )
    write_delimited(tmp_path / "te.csv", [["sentence", "y"], ["t", "1"]], ",")
    splits = load_hub(
        "csv",
        ColumnMapping(text="sentence", label="y"),
        data_files={"train": str(tmp_path / "tr.csv"), "test": str(tmp_path / "te.csv")},
        cache_dir=str(tmp_path / "cache"),
    )
    assert (len(splits.train), len(splits.val), len(splits.test)) == (9, 1, 1)
    assert splits.test[0].id == "test-0" and splits.labels() == ["0", "1"]


@pytest.mark.slow
def test_load_hub_class_labels_become_names_and_unlabelled_splits_are_skipped(tmp_path):
    datasets = pytest.importorskip("datasets")
    write_delimited(tmp_path / "tr.csv", [["text", "label"], ["good", "1"], ["bad", "0"]], ",")
    write_delimited(tmp_path / "te.csv", [["text", "label"], ["hidden", "-1"]], ",")
    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )
    splits = load_hub(
        "csv",
        data_files={"train": str(tmp_path / "tr.csv"), "test": str(tmp_path / "te.csv")},
        features=features,
        cache_dir=str(tmp_path / "cache"),
        val_fraction=0.0,
    )
    assert [ex.label for ex in splits.train] == ["pos", "neg"] and splits.test == []


# ---------------------------------------------------------------- ERASER


DOCS = {"d1": "the film was great .\nreally great", "d2": "bad plot", "d3": "it is a cat"}
ANNOTATIONS = {
    "train": [
        {
            "annotation_id": "a1",
            "classification": "POS",
            "evidences": [
                [{"docid": "d1", "start_token": 3, "end_token": 4}],
                [{"docid": "d1", "start_token": 5, "end_token": 7}],
            ],
            "query": "sentiment?",
        },
        {"annotation_id": 2, "classification": "NEG", "docids": ["d2"], "evidences": []},
    ],
    "test": [
        {
            "annotation_id": "a3",
            "classification": "yes",
            "docids": ["d2", "d3"],
            "evidences": [
                [
                    {"docid": "d3", "start_token": 3, "end_token": 4},
                    {"docid": "d2", "start_token": 0, "end_token": 1},
                ]
            ],
            "query": "is it a cat?",
        },
    ],
}


def make_eraser(
    folder: Path, *, docs_jsonl: bool = False, annotations=ANNOTATIONS, docs=DOCS
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if docs_jsonl:
        write_jsonl(folder / "docs.jsonl", [{"docid": k, "document": v} for k, v in docs.items()])
    else:
        (folder / "docs").mkdir(exist_ok=True)
        for docid, text in docs.items():
            (folder / "docs" / docid).write_text(text, encoding="utf-8")
    for split, rows in annotations.items():
        write_jsonl(folder / f"{split}.jsonl", rows)
    return folder


@pytest.mark.parametrize("docs_jsonl", [False, True])
def test_load_eraser(tmp_path, docs_jsonl):
    splits = load_data(make_eraser(tmp_path / "tiny", docs_jsonl=docs_jsonl))
    assert splits.name == "tiny" and splits.val == []  # missing split file → empty split
    a1, a2 = splits.train
    assert (a1.id, a1.label, a1.query, a1.docid) == ("a1", "POS", "sentiment?", "d1")
    assert a1.words == ["the", "film", "was", "great", ".", "really", "great"]
    assert a1.rationale == [0, 0, 0, 1, 0, 1, 1]
    assert (a2.id, a2.rationale, a2.query) == (
        "2",
        [0, 0],
        None,
    )  # int id → str; no evidence → zeros
    (a3,) = splits.test
    assert a3.words == ["bad", "plot", "it", "is", "a", "cat"] and a3.docid == "d2|d3"
    assert a3.rationale == [1, 0, 0, 0, 0, 1]  # d3's span shifted by len(d2)
    assert load_documents(tmp_path / "tiny") == {k: v.split() for k, v in DOCS.items()}
    assert load_documents(tmp_path / "tiny", ["d2", "nope"]) == {"d2": ["bad", "plot"]}


def test_load_eraser_reads_only_needed_docs(tmp_path):
    folder = make_eraser(tmp_path / "e")
    (folder / "docs" / "unused").write_bytes(b"\xff\xfe not utf-8")  # would fail if read
    assert len(load_eraser(folder).train) == 2


def one_bad(tmp_path, line: dict, docs=DOCS, split="val") -> Path:
    annotations = {"train": ANNOTATIONS["train"], split: [ANNOTATIONS["test"][0], line]}
    return make_eraser(tmp_path / "bad", annotations=annotations, docs=docs)


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        (
            {"annotation_id": "x", "classification": "POS", "docids": ["nope"]},
            "docids",
            "unknown docid 'nope'",
        ),
        (
            {
                "annotation_id": "x",
                "classification": "POS",
                "evidences": [[{"docid": "d2", "start_token": 1, "end_token": 3}]],
            },
            "evidences",
            "evidence span (1, 3) is outside document 'd2' (2 words)",
        ),
        (
            {
                "annotation_id": "x",
                "classification": "POS",
                "docids": ["d1"],
                "evidences": [[{"docid": "d2", "start_token": 0, "end_token": 1}]],
            },
            "evidences",
            "evidence docid 'd2' is not among the annotation's documents (d1)",
        ),
        (
            {"annotation_id": "x", "classification": None, "docids": ["d1"]},
            "classification",
            "empty label",
        ),
        (
            {"annotation_id": "x", "classification": "POS", "docids": ["empty"]},
            "docids",
            "empty text",
        ),
        (
            {"annotation_id": "a1", "classification": "POS", "docids": ["d1"]},
            "annotation_id",
            "duplicate annotation_id 'a1'",
        ),
        ({"classification": "POS", "docids": ["d1"]}, "annotation_id", "Field required"),
        (
            {
                "annotation_id": "x",
                "classification": "POS",
                "evidences": [[{"docid": "d1", "start_token": 3, "end_token": 1}]],
            },
            "evidences.0.0",
            "end_token 1 < start_token 3",
        ),
    ],
)
def test_bad_eraser_lines_name_file_line_and_field(tmp_path, line, field, message):
    folder = one_bad(tmp_path, line, docs={**DOCS, "empty": "  \n"})
    with pytest.raises(DataError) as err:
        load_data(folder)
    assert (err.value.path, err.value.line, err.value.field) == (
        str(folder / "val.jsonl"),
        2,
        field,
    )
    assert message in str(err.value)


def test_bad_eraser_json_and_empty_annotation_file(tmp_path):
    folder = make_eraser(tmp_path / "e")
    (folder / "val.jsonl").write_text('{"annotation_id": "v1"\n')
    with pytest.raises(DataError, match=r"val.jsonl:1: malformed JSON"):
        load_eraser(folder)
    (folder / "val.jsonl").write_text("\n")
    with pytest.raises(DataError, match=r"val.jsonl: empty file"):
        load_eraser(folder)
    folder = make_eraser(tmp_path / "j", docs_jsonl=True)
    with (folder / "docs.jsonl").open("a") as handle:
        handle.write('{"docid": "d9"}\n')
    with pytest.raises(DataError, match=r"docs.jsonl:4: document: missing 'document'"):
        load_eraser(folder)


def test_unsafe_docid_is_rejected(tmp_path):
    folder = one_bad(
        tmp_path, {"annotation_id": "x", "classification": "POS", "docids": ["../train.jsonl"]}
    )
    with pytest.raises(DataError, match="unsafe docid"):
        load_eraser(folder)


def test_read_and_apply_rationales(tmp_path):
    folder = make_eraser(tmp_path / "e")
    splits = load_eraser(folder)
    examples = splits.train + splits.test
    predicted = write_jsonl(
        tmp_path / "pred.jsonl",
        [
            {
                "annotation_id": "a1",
                "classification": "POS",
                "evidences": [[{"docid": "d1", "start_token": 0, "end_token": 2}]],
            },
            {
                "annotation_id": "zzz",
                "classification": "POS",
                "evidences": [],
            },  # no such example: ignored
        ],
    )
    assert [a.annotation_id for a in read_annotations(predicted)] == ["a1", "zzz"]
    out = apply_rationales(examples, predicted)
    assert out[0].rationale == [1, 1, 0, 0, 0, 0, 0]
    assert out[1].rationale is None and out[2].rationale is None  # no matching annotation
    assert examples[0].rationale == [0, 0, 0, 1, 0, 1, 1]  # inputs untouched
    # several-document examples split back by the documents
    docs = load_documents(folder)
    multi = [
        {"annotation_id": "a3", "evidences": [[{"docid": "d3", "start_token": 0, "end_token": 1}]]}
    ]
    out = apply_rationales(
        splits.test, read_annotations(write_jsonl(tmp_path / "m.jsonl", multi)), documents=docs
    )
    assert out[0].rationale == [0, 0, 1, 0, 0, 0]


def test_apply_rationales_out_of_range_names_file_and_line(tmp_path):
    splits = load_eraser(make_eraser(tmp_path / "e"))
    path = write_jsonl(
        tmp_path / "pred.jsonl",
        [
            {"annotation_id": "2", "evidences": []},
            {
                "annotation_id": "a1",
                "evidences": [[{"docid": "d1", "start_token": 5, "end_token": 8}]],
            },
        ],
    )
    with pytest.raises(DataError) as err:
        apply_rationales(splits.train, path)
    assert (err.value.path, err.value.line, err.value.field) == (str(path), 2, "evidences")
    assert "outside document 'd1' (7 words)" in str(err.value)
    with pytest.raises(DataError, match="^evidences: annotation 'a1': evidence span"):
        apply_rationales(splits.train, read_annotations(path))
