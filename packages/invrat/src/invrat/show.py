"""``invrat show``: one HTML page with each document's predicted rationale highlighted.

Predicted tokens are shaded by the generator's probability (when soft scores
are in the file) and outlined when hard-selected; the gold rationale, where the
data has one, is shown beside in green. Labels (gold and predicted) head each card.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rationale_commons.records import Example

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
h1{font-size:1.4em} .legend span{padding:0 .4em;margin-right:1em}
.card{border:1px solid #ccc;border-radius:6px;padding:.8em 1em;margin:1em 0}
.head{font-size:.9em;color:#555;margin-bottom:.5em} .ok{color:#1a7f37} .bad{color:#cf222e}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:1.5em} .cols.one{grid-template-columns:1fr}
.text{line-height:1.7;font-size:.95em} .col h3{font-size:.85em;margin:.2em 0;color:#555}
.sel{outline:1.5px solid #d4a000;border-radius:2px} .gold{background:#b7ebc6;border-radius:2px}
.query{font-style:italic;color:#444;margin:.3em 0}
"""


def _word_html(word: str, style: str, cls: str, title: str) -> str:
    attrs = (f' class="{cls}"' if cls else "") + (f' style="{style}"' if style else "") + (f' title="{title}"' if title else "")
    return f"<span{attrs}>{html.escape(word)}</span>" if attrs else html.escape(word)


def _predicted_mask(result: dict[str, Any], n: int) -> tuple[list[int], list[float] | None]:
    mask = [0] * n
    scores: list[float] | None = None
    for rat in result.get("rationales") or []:
        for h in rat.get("hard_rationale_predictions") or []:
            start, end = max(0, int(h["start_token"])), min(int(h["end_token"]), n)
            mask[start:end] = [1] * max(0, end - start)
        soft = rat.get("soft_rationale_predictions")
        if soft is not None:
            scores = [float(x) for x in soft[:n]] + [0.0] * max(0, n - len(soft))
    return mask, scores


def render_card(ex: Example, result: dict[str, Any], max_words: int) -> str:
    n = len(ex.words)
    mask, scores = _predicted_mask(result, n)
    shown = min(n, max_words)
    pred_words = []
    for i in range(shown):
        shade = f"background:rgba(255,200,0,{0.15 + 0.7 * scores[i]:.2f})" if scores is not None and scores[i] > 0.05 else ""
        if scores is None and mask[i]:
            shade = "background:rgba(255,200,0,.6)"
        title = f"p={scores[i]:.2f}" if scores is not None else ""
        pred_words.append(_word_html(ex.words[i], shade, "sel" if mask[i] else "", title))
    more = f" <em>… {n - shown} more words</em>" if n > shown else ""
    predicted = result.get("classification")
    verdict = ""
    if predicted is not None:
        ok = str(predicted) == ex.label
        verdict = f' · predicted <b class="{"ok" if ok else "bad"}">{html.escape(str(predicted))}</b>'
    selected = sum(mask)
    head = (
        f'<div class="head"><b>{html.escape(ex.id)}</b> · gold label <b>{html.escape(ex.label)}</b>{verdict}'
        f" · {selected}/{n} words selected ({selected / max(1, n):.0%})</div>"
    )
    query = f'<div class="query">Query: {html.escape(ex.query)}</div>' if ex.query else ""
    cols = [f'<div class="col"><h3>predicted rationale</h3><div class="text">{" ".join(pred_words)}{more}</div></div>']
    if ex.rationale is not None:
        gold_words = [_word_html(ex.words[i], "", "gold" if ex.rationale[i] else "", "") for i in range(shown)]
        cols.append(f'<div class="col"><h3>gold rationale</h3><div class="text">{" ".join(gold_words)}{more}</div></div>')
    grid = "cols" if len(cols) == 2 else "cols one"
    return f'<div class="card">{head}{query}<div class="{grid}">{"".join(cols)}</div></div>'


def render_page(examples: Sequence[Example], results: Sequence[dict[str, Any]], *, title: str, max_words: int = 1500) -> str:
    by_id = {str(r["annotation_id"]): r for r in results}
    cards = [render_card(ex, by_id[ex.id], max_words) for ex in examples if ex.id in by_id]
    legend = (
        '<div class="legend"><span class="sel" style="background:rgba(255,200,0,.6)">predicted (shade = generator probability)</span>'
        '<span class="gold">gold</span></div>'
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1><p>{len(cards)} documents.</p>{legend}{''.join(cards)}</body></html>"
    )


def write_page(path: str | Path, page: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
