"""rational_lamol: LAMOL lifelong language learning (Sun et al., ICLR 2020) and Rational LAMOL
(Kanwatchara et al., ACL-IJCNLP 2021): rationale-guided critical component identification and
freezing on top of it.

- :mod:`config` — the experiment config (TOML → pydantic, unknown keys rejected).
- :mod:`tasks` — examples → QA text ``c q __ans__ a EOS``; :func:`tasks.encode_qa`.
- :mod:`modeling` — any causal LM (hub id, folder, GGUF) or a fresh GPT-2 with its own BPE.
- :mod:`lamol` — the loss ``L_QA + lm_lambda L_LM``; :mod:`trainer` — one-task training
  (:func:`trainer.train_task` with callbacks); :mod:`pseudo` — pseudo-samples;
  :mod:`evaluate` — greedy decoding, exact match.
- :mod:`stage` — what a method sees of a stage (plain data); :mod:`streams` — the random streams.
- :mod:`methods` — ``finetune``, ``lamol``, ``multitask``; :mod:`rational` — ``rational-block``,
  ``rational-head``; :mod:`controls` — ``random-block``, ``random-head``; :mod:`registry` — the
  names a config can use, and plugins.
- :mod:`pipeline` — the per-task loop, run dirs, resume; :mod:`results` — ``results.json``;
  :mod:`report`, :mod:`stats` — tables, paired comparisons, the HTML report.
- :mod:`adapters`, :mod:`cci`, :mod:`freezing` — architecture adapters, CCI, critical freezing.
- :mod:`cli` — ``rational-lamol run``.
"""

__version__ = "0.1.0"
