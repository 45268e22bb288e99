"""facerefl.eval: metrics, scoring and figures of the evaluation (issue 7).

* :mod:`~facerefl.eval.metrics` — PSNR/RMSE, light-probe metric, scale alignment.
* :mod:`~facerefl.eval.compare` — one example's maps and light against ground truth.
* :mod:`~facerefl.eval.synthetic` — full pipeline on synthetic examples, summaries.
* :mod:`~facerefl.eval.consistency` — Figure 7 (one face under several lightings).
* :mod:`~facerefl.eval.photos` — real photos without ground truth.
* :mod:`~facerefl.eval.report`, :mod:`~facerefl.eval.plots` — tables, gather step, PNGs.

The task :func:`facerefl.tasks.evaluate.evaluate` and the script ``evaluate.py`` drive them.
"""
