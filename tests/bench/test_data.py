import json

from bench import data as bench


def test_bench_writes_json_and_table(tmp_path, capsys):
    res = bench.run(tmp_path, cases=(("sh", 32, 1),))
    data = json.loads((tmp_path / "data.json").read_text())
    assert data == res and data["rows"][0]["examples_per_second"] > 0
    assert "examples/s" in capsys.readouterr().out
