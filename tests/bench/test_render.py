import json

from bench import render as bench


def test_bench_run_writes_json(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "SIZES", (32,))
    res = bench.run(tmp_path)
    data = json.loads((tmp_path / "render.json").read_text())
    assert data == res
    row = data["rows"][0]
    assert row["size"] == 32 and row["device"] == "cpu" and row["fwd_bwd_ms"] > 0 and row["fwd_bwd_cpu_ms"] > 0
    assert {r["threads"] for r in data["rows"]} >= {1}
    assert 0.3 * 32 * 32 < row["covered_pixels"] < 0.8 * 32 * 32
