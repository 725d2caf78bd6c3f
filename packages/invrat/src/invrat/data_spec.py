"""How a run's data was read (``data.json`` in the run dir): the column mapping of each split, the
split trained on, whether ERASER annotations without their document were left out and the cap
on examples per split. ``invrat rationalize`` and ``invrat evaluate --run`` read data the same way
unless told otherwise."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from invrat.evaluate import examples_of, split_name
from rationale_commons.errors import DataError
from rationale_commons.loaders import ColumnMapping, SplitColumns, load_data
from rationale_commons.records import SPLIT_NAMES, Example, Splits
from rationale_commons.runtime import read_json, write_json_atomic

DATA_FILE = "data.json"


class DataSpec(BaseModel):
    """What ``invrat train`` was told about its data."""

    model_config = ConfigDict(extra="forbid")

    columns: dict[str, ColumnMapping] = Field(default_factory=lambda: {s: ColumnMapping() for s in SPLIT_NAMES})
    train_split: str = "train"
    skip_missing_docs: bool = False
    max_examples: int | None = None

    @classmethod
    def of(cls, columns: SplitColumns, *, train_split: str = "train", **options: object) -> DataSpec:
        """A spec whose ``columns`` hold each split's mapping (one mapping given: the same for all);
        an unknown ``train_split`` is a DataError before any data is read."""
        split_name(train_split)
        if isinstance(columns, dict):
            per_split = {s: columns.get(s) or ColumnMapping() for s in SPLIT_NAMES}
        else:
            per_split = {s: columns or ColumnMapping() for s in SPLIT_NAMES}
        return cls(columns=per_split, train_split=train_split, **options)

    def load(self, data: str | Path) -> Splits:
        """The splits read this way: the train split is ``train_split`` (val then selects the model, unless
        it is the split trained on), each split cut to its first ``max_examples``."""
        splits = load_data(data, self.columns, skip_missing_docs=self.skip_missing_docs)
        train = split_name(self.train_split)
        if not splits[train]:
            raise DataError(f"split {self.train_split!r} is empty: nothing to train on", path=data)
        cap = self.max_examples
        parts = {"train": splits[train], "val": [] if train == "val" else splits.val,
                 "test": [] if train == "test" else splits.test}
        return Splits.model_construct(name=splits.name, **{s: examples[:cap] for s, examples in parts.items()})


def save_spec(run_dir: Path, spec: DataSpec) -> None:
    write_json_atomic(run_dir / DATA_FILE, spec.model_dump(mode="json", exclude_none=True))


def read_spec(run_dir: Path) -> DataSpec | None:
    """The run's data spec (None for runs trained before it was written, or by the library)."""
    path = run_dir / DATA_FILE
    return DataSpec.model_validate(read_json(path)) if path.is_file() else None


def read_split(data: str | Path, split: str, columns: SplitColumns, run_dir: Path) -> list[Example]:
    """A split of ``data`` read as the run read its data, ``columns`` (when given) in place of its mapping."""
    spec = read_spec(run_dir) or DataSpec()
    splits = load_data(data, spec.columns if columns is None else columns, skip_missing_docs=spec.skip_missing_docs)
    return examples_of(splits, split, data)
