"""``datasets.load_dataset`` sources (hub names, or a builder such as ``"csv"`` with ``data_files``) → :class:`Splits`."""

from __future__ import annotations

from typing import Any

from rationale_commons.errors import DataError
from rationale_commons.loaders.columns import (
    IdRegistry,
    SplitColumns,
    carve_validation,
    columns_for,
    row_to_example,
)
from rationale_commons.records import Example, Splits

HUB_SPLITS = {"train": "train", "validation": "val", "val": "val", "dev": "val", "test": "test"}


def _label_names(dataset: Any, column: str) -> Any:
    """The ClassLabel feature of ``column`` (ints → names), or None."""
    feature = getattr(dataset, "features", {}).get(column)
    return feature if hasattr(feature, "int2str") else None


def _unlabelled(dataset: Any, column: str) -> bool:
    try:
        return all(v < 0 for v in dataset[column])
    except (TypeError, KeyError):  # streaming datasets cannot be indexed by column
        return False


def load_hub(
    name: str,
    columns: SplitColumns = None,
    *,
    config_name: str | None = None,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    **kwargs: Any,
) -> Splits:
    """Load through ``datasets.load_dataset(name, config_name, **kwargs)``.

    Splits named ``train``, ``validation``/``val``/``dev`` and ``test`` are used;
    others, and splits whose class labels are all -1 (unlabelled), are ignored. Class-label columns become their names. Ids as in
    :func:`~rationale_commons.loaders.table.load_table` (``"<split>-<row>"``
    unless ``columns.id``); without a validation split one is carved from train
    the same way. Any failure to load (offline, unknown name) is a
    :class:`DataError`.
    """
    try:
        import datasets

        loaded = datasets.load_dataset(name, config_name, **kwargs)
    except Exception as exc:  # offline, unknown name, bad files: many exception types
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise DataError(
            f"cannot load {name!r} with datasets.load_dataset "
            f"(not a local file or folder; hub names need the network): {type(exc).__name__}: {detail}"
        ) from None
    parts = loaded if isinstance(loaded, dict) or hasattr(loaded, "keys") else {"train": loaded}
    ids = IdRegistry()
    splits: dict[str, list[Example]] = {}
    for hub_split, dataset in parts.items():
        split = HUB_SPLITS.get(hub_split)
        if split is None:
            continue
        if split in splits:
            raise DataError(f"{name}: more than one split maps to {split!r}")
        columns_here = columns_for(columns, split)
        label_feature = _label_names(dataset, columns_here.label)
        if label_feature is not None and _unlabelled(dataset, columns_here.label):
            continue  # GLUE-style test split: every label is -1
        where = f"{name}[{hub_split}]"
        examples = []
        for index, row in enumerate(dataset):
            if label_feature is not None and isinstance(row.get(columns_here.label), int):
                value = row[columns_here.label]
                row = {**row, columns_here.label: label_feature.int2str(value) if value >= 0 else None}
            ex = row_to_example(
                row, columns_here, default_id=f"{split}-{index}", path=where, line=None, row_index=index
            )
            ids.add(ex.id, path=where, line=None, row_index=index, field=columns_here.id or "id")
            examples.append(ex)
        splits[split] = examples
    if not splits:
        raise DataError(f"{name}: no train/validation/test split (found {', '.join(parts)})")
    train, val = splits.get("train", []), splits.get("val", [])
    if train and "val" not in splits:
        train, val = carve_validation(train, val_fraction, split_seed)
    return Splits(
        name=name.rstrip("/").split("/")[-1], train=train, val=val, test=splits.get("test", [])
    )
