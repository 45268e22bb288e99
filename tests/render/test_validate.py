import json

import pytest

from facerefl.render import validate


@pytest.fixture(scope="module")
def quick_results():
    return validate.run_all(quick=True)


def test_quick_validation_meets_targets(quick_results):
    res = quick_results
    assert res["irradiance_mean_rel_err"] <= 0.01
    assert res["white_furnace_err"] <= 0.005
    assert res["occluded_diffuse_mean_rel_err"] < 0.2
    assert res["occluded_diffuse_raycast_mean_rel_err"] < 0.2
    # the default form is the more accurate one
    d = res["specular_default_form"]
    other = [f for f in ("lobe", "paper") if f != d][0]
    assert res[f"specular_{d}_mean_rel_err"] < res[f"specular_{other}_mean_rel_err"]
    assert res["specular_mean_rel_err"] == res[f"specular_{d}_mean_rel_err"]


def test_trench_visibility_is_exact():
    import numpy as np
    dirs = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.01], [0.6, 0.0, 0.8], [0.0, 1.0, 0.001]])
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    v = validate._trench_visibility(dirs, x0=0.0, width=2.0, depth=1.0)
    # up: open; down: floor; nearly horizontal towards a wall: blocked;
    # 0.6/0.8 reaches x = 1 at z = 1.33 > depth: open; along the trench: open
    assert v.tolist() == [1.0, 0.0, 0.0, 1.0, 1.0]


def test_bowl_raycast_visibility():
    import numpy as np
    caster = validate._bowl_intersector()
    bottom, up = np.array([0.0, 0.0, -1.0]), np.array([0.0, 0.0, 1.0])
    dirs = np.array([[0.0, 0.0, 1.0], [0.8, 0.0, 0.6], [0.6, 0.0, 0.8], [0.0, 0.0, -1.0]])
    # from the bottom the opening is the 45° cone about +z
    assert validate._raycast_visibility(caster, bottom, up, dirs).tolist() == [1.0, 0.0, 1.0, 0.0]


def test_cli_writes_json_and_rejects_folder(tmp_path, capsys, monkeypatch, quick_results):
    monkeypatch.setattr(validate, "run_all", lambda quick: dict(quick_results))
    out = tmp_path / "v.json"
    assert validate.main(["--quick", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    for key in ("irradiance_mean_rel_err", "occluded_diffuse_mean_rel_err", "occluded_diffuse_raycast_mean_rel_err", "specular_mean_rel_err",
                "specular_max_rel_err", "specular_default_form", "white_furnace_err",
                "specular_lobe_mean_rel_err", "specular_paper_max_rel_err"):
        assert key in data
    assert "irradiance_mean_rel_err" in capsys.readouterr().out
    assert validate.main(["--quick", "--json", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as exc:
        validate.main(["--bogus"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unrecognized arguments") and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_full_validation_meets_targets():
    res = validate.run_all(quick=False)
    assert res["irradiance_mean_rel_err"] <= 0.01
    assert res["white_furnace_err"] <= 0.005
    assert res["specular_lobe_mean_rel_err"] < res["specular_paper_mean_rel_err"]
