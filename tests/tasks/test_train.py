import json

import pytest
import torch
from hydra.utils import instantiate

from facerefl.errors import InputError
from facerefl.tasks.train import train
from tests.models.helpers import compose_train

EXPERIMENTS = ["albedo_ae", "specular_ae", "normal_ae", "albedo_ae_noskip", "specular_ae_noskip",
               "normal_ae_noskip", "albedo_enh", "specular_enh", "normal_enh", "light", "level"]


def _enh_overrides(name, preset="cpu"):
    # The enhancers start from the preset's shipped autoencoder (data/checkpoints/cpu); the
    # paper preset ships none, so its enhancer configs are built on an untrained one.
    return ["model.autoencoder_weights=null"] if name.endswith("_enh") and preset != "cpu" else []


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_fast_dev_run(tmp_path, name):
    cfg = compose_train(tmp_path, [f"experiment={name}", "trainer.fast_dev_run=true"] + _enh_overrides(name))
    result = train(cfg)
    assert result.trainer.global_step >= 1
    assert "train/loss" in result.metrics and torch.isfinite(torch.tensor(result.metrics["train/loss"]))
    assert result.export_path.is_file()


@pytest.mark.parametrize("preset", ["cpu", "paper"])
def test_every_model_config_instantiates(tmp_path, preset):
    for name in EXPERIMENTS:
        cfg = compose_train(tmp_path, [f"experiment={name}", f"preset={preset}"] + _enh_overrides(name, preset))
        model = instantiate(cfg.model)
        assert sum(p.numel() for p in model.parameters()) > 0


def test_autoencoder_training_reduces_loss_and_logs_val_psnr(tmp_path):
    cfg = compose_train(tmp_path, ["experiment=albedo_ae", "trainer.max_steps=16",
                                   "trainer.val_check_interval=8", "trainer.log_every_n_steps=1",
                                   "logger=csv"])
    result = train(cfg)
    assert "val/psnr" in result.metrics
    import csv
    rows = list(csv.DictReader(open(tmp_path / "run" / "csv" / "metrics.csv")))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(losses) >= 12
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4


def test_enhancer_missing_autoencoder_weights_is_a_user_error(tmp_path):
    cfg = compose_train(tmp_path, ["experiment=albedo_enh", f"model.autoencoder_weights={tmp_path}/none.safetensors"])
    with pytest.raises(InputError, match="train the autoencoder"):
        train(cfg)


@pytest.mark.parametrize("name,shipped", [("level", "level"), ("light", "light"), ("albedo_ae", "albedo")])
def test_init_weights_starts_from_an_export(tmp_path, name, shipped):
    """init_weights= starts the stage from exported weights (fine-tuning): a shipped branch
    file serves the autoencoder, its enhancer entries ignored; a foreign file is a user error."""
    from safetensors.torch import load_file

    from facerefl.models.networks import shipped_dir

    src = shipped_dir("cpu_x10") / f"{shipped}.safetensors"
    cfg = compose_train(tmp_path, [f"experiment={name}", "train=false", f"init_weights={src}"])
    result = train(cfg)
    state, ref = result.model.export_state(), load_file(str(src))
    assert all(torch.equal(v, ref[k]) for k, v in state.items())
    again = compose_train(tmp_path / "b", [f"experiment={name}", "train=false"])
    assert not all(torch.equal(v, ref[k]) for k, v in train(again).model.export_state().items())
    other = shipped_dir("cpu_x10") / ("specular.safetensors" if name != "albedo_ae" else "light.safetensors")
    bad = compose_train(tmp_path / "c", [f"experiment={name}", "train=false", f"init_weights={other}"])
    with pytest.raises(InputError, match="init_weights"):
        train(bad)


def test_freeze_decoder_trains_the_encoder_alone(tmp_path):
    args = ["experiment=albedo_ae", "trainer.max_steps=3", "model.freeze_decoder=true"]
    start = train(compose_train(tmp_path / "a", args + ["train=false"])).model  # same seed, same start
    before = {k: v.clone() for k, v in start.net.state_dict().items()}
    result = train(compose_train(tmp_path / "b", args))
    after = result.model.net.state_dict()
    dec = [k for k in before if k.startswith("decoder.")]
    enc = [k for k in before if k.startswith("encoder.") and before[k].is_floating_point()]
    assert dec and all(torch.equal(before[k], after[k]) for k in dec)  # weights and BN statistics
    assert any(not torch.equal(before[k], after[k]) for k in enc)


# ---------------------------------------------------------------- CLI, DDP, resume, W&B
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TEST_DATA = ["data=random", f"hydra.searchpath=[file://{REPO}/tests/models/conf]"]


def _cli(run_dir, *overrides, wait=True):
    cmd = [sys.executable, str(REPO / "train.py"), *TEST_DATA, f"hydra.run.dir={run_dir}", *overrides]
    env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_DISABLE_GIT": "true"}
    if not wait:
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_cli_user_error_is_one_line_exit_2(tmp_path):
    proc = _cli(tmp_path / "r", "experiment=albedo_enh", f"model.autoencoder_weights={tmp_path}/missing.safetensors")
    assert proc.returncode == 2
    err = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "missing.safetensors" in err[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    run = tmp_path / "ddp"
    proc = _cli(run, "experiment=light", "trainer=ddp", "trainer.devices=2", "trainer.max_steps=4",
                "trainer.val_check_interval=2", "logger=csv", "callbacks=none")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (run / "train_ddp_process_1.log").exists()  # the second rank ran
    assert (run / "export" / "light.safetensors").is_file()
    assert "`max_steps=4` reached" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_resume_from_last_checkpoint_after_kill(tmp_path):
    run = tmp_path / "resume"
    common = ["experiment=light", "logger=csv", "callbacks=default",
              "callbacks.model_checkpoint.every_n_train_steps=2", "trainer.val_check_interval=4"]
    proc = _cli(run, *common, "trainer.max_steps=100000", wait=False)
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    step = 0
    while time.time() < deadline:
        if last.exists():
            try:
                step = torch.load(last, weights_only=True, map_location="cpu")["global_step"]
            except Exception:  # being written
                step = 0
            if step >= 4:
                break
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert step >= 4, "no checkpoint written before the kill"
    step = torch.load(last, weights_only=True, map_location="cpu")["global_step"]
    resumed = _cli(run, *common, f"trainer.max_steps={step + 4}", "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert "Restored all states" in resumed.stdout + resumed.stderr
    assert torch.load(last, weights_only=True, map_location="cpu")["global_step"] == step + 4


@pytest.mark.slow
def test_wandb_offline_logs_curves_and_images(tmp_path):
    run = tmp_path / "wb"
    proc = _cli(run, "experiment=albedo_ae", "trainer.max_steps=4", "trainer.val_check_interval=2",
                "trainer.log_every_n_steps=1", "logger=wandb", "callbacks=none")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    runs = list((run / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("run-*.wandb"))  # the offline log `wandb sync` uploads
    assert list((runs[0] / "files" / "media" / "images").rglob("*.png"))


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_cli_fast_dev_run_with_real_data(tmp_path, name):
    # exactly `python train.py experiment=<name> trainer.fast_dev_run=true` on the synthetic
    # data module (examples generated on the fly), only the output folder redirected
    cmd = [sys.executable, str(REPO / "train.py"), f"experiment={name}", "trainer.fast_dev_run=true",
           f"hydra.run.dir={tmp_path}"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "export" / f"{name}.safetensors").is_file()


@pytest.mark.slow
def test_train_all_end_to_end_tiny(tmp_path):
    # `make train` in miniature: cache, 7 stages, assembly, evaluation, export, model card
    from facerefl.models.networks import ReflectanceNetworks
    from facerefl.tasks import train_all

    out = tmp_path / "ship"
    common = ["--cache-examples", "8", "--ae-steps", "2", "--enh-steps", "2", "--light-steps", "2",
              "--val-examples", "4", "--out", str(out), "--run-root", str(tmp_path / "runs"),
              "data.batch_size=4", "data.num_val=4"]
    # two stages alone (as a parallel process would), then the rest and the export
    assert train_all.main([*common, "--stages", "light", "albedo_ae"]) == 0
    stage_dir = tmp_path / "runs" / "cpu" / "stages"
    assert sorted(p.name for p in stage_dir.glob("*.safetensors")) == ["albedo_ae.safetensors", "light.safetensors"]
    assert not out.exists()
    assert train_all.main([*common, "--reuse"]) == 0
    record = json.loads((out / "metrics.json").read_text())
    assert [s["stage"] for s in record["stages"]] == list(train_all.STAGES)
    assert record["metrics"]["num_examples"] == 4 and record["metrics_clean"]["num_examples"] == 4
    nets = ReflectanceNetworks.from_safetensors(out)
    assert nets.cfg.albedo.input_size == 64 and nets.level is not None
    assert record["metrics"]["level/rms_log"] > 0 and record["metrics"]["level/encoders_rms_log"] > 0
    card = (out / "MODEL_CARD.md").read_text()
    assert "| albedo |" in card and "without the realism effects" in card and "| level regressor |" in card
    assert str(tmp_path) not in card and "8 examples in" in card  # no machine path
    # a later session continues the run from the exported folder alone
    seeded = tmp_path / "next" / "stages"
    assert train_all.seed_stages(out, seeded) == list(train_all.STAGES)
    sizes = json.loads((out / "config.json").read_text())
    sizes.pop("extra", None)
    again = train_all.assemble(sizes, seeded)
    for name, t in nets.state_dict().items():
        assert torch.equal(t, again.state_dict()[name]), name
    assert train_all.seed_stages(out, seeded) == []  # present stages are kept


@pytest.mark.parametrize("kind", ["albedo", "specular", "normal"])
def test_noskip_experiments_build_decoders_without_skips(tmp_path, kind):
    cfg = compose_train(tmp_path, [f"experiment={kind}_ae_noskip"])
    assert cfg.run_name == f"{kind}_ae_noskip" and cfg.model.net.kind == kind
    assert instantiate(cfg.model).net.decoder.use_skips is False


@pytest.mark.parametrize("args, needle", [
    (["--cache-examples", "0", "--base", "{tmp}/none"], "no config.json"),
    (["--cache-examples", "0", "--base", "{shipped}/cpu_noskip"], "does not hold full"),
    (["--cache-examples", "0", "--preset", "paper", "--base", "{shipped}/cpu"], "does not hold full"),
    (["--data-commit", "no-such-revision-1f2e3d"], "needs a git checkout"),
    (["--data-commit", "HEAD", "--cache-examples", "0"], "needs --cache-examples"),
])
def test_train_all_no_skip_user_errors_exit_2(tmp_path, capsys, args, needle):
    from facerefl.models.networks import shipped_dir
    from facerefl.tasks import train_all

    args = [a.format(tmp=tmp_path, shipped=shipped_dir("cpu").parent) for a in args]
    rc = train_all.main(["--no-skip", "--run-root", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and needle in err and err.count("\n") == 0, err
    assert not (tmp_path / "out").exists()


def test_existing_cache_of_another_size_is_refused(tmp_path):
    from facerefl.tasks import train_all

    (tmp_path / "manifest.json").write_text(json.dumps({"count": 3}))
    with pytest.raises(InputError, match="3 seeds, not 8"):
        train_all.ensure_cache(tmp_path, 8, None)
    assert train_all.ensure_cache(tmp_path, 3, None) == tmp_path
    # a cache whose generator rejected seeds (make_cache --unwrap photo) holds fewer examples
    (tmp_path / "manifest.json").write_text(json.dumps({"count": 3, "skipped": {"4": "no face"}}))
    assert train_all.ensure_cache(tmp_path, 4, None) == tmp_path


@pytest.mark.slow
def test_train_all_no_skip_end_to_end_tiny(tmp_path):
    # `train_all --no-skip` in miniature, the cache built by a git-archived copy of the data
    # code (--data-commit): 3 stages, assembly on cpu's enhancers and light, export with cpu
    # as the base folder, model card
    from facerefl.models.networks import ReflectanceNetworks, shipped_dir
    from facerefl.tasks import train_all

    out = tmp_path / "ship"
    rc = train_all.main(["--no-skip", "--data-commit", "HEAD", "--cache-workers", "1", "--cache-examples", "8",
                         "--ae-steps", "2", "--val-examples", "4", "--out", str(out),
                         "--run-root", str(tmp_path / "runs"), "data.batch_size=4", "data.num_val=4"])
    assert rc == 0
    record = json.loads((out / "metrics.json").read_text())
    assert [s["stage"] for s in record["stages"]] == list(train_all.NOSKIP_STAGES)
    assert record["metrics"]["num_examples"] == 4 and record["train_code_val"]["metrics"]["num_examples"] == 4
    assert list((tmp_path / "runs").glob("src-*/facerefl/data/make_cache.py"))
    nets = ReflectanceNetworks.from_safetensors(out)
    assert not nets.cfg.albedo.use_skips
    cpu = ReflectanceNetworks.load_shipped("cpu")
    assert all(torch.equal(a, b) for a, b in zip(nets.light.state_dict().values(), cpu.light.state_dict().values()))
    assert not (out / "light.safetensors").exists()
    assert json.loads((out / "config.json").read_text())["base"]["folder"].endswith(shipped_dir("cpu").name)
    assert "| albedo |" in (out / "MODEL_CARD.md").read_text()


def test_elapsed_time_survives_a_resume(tmp_path):
    """A stage resumed from ``last.ckpt`` continues its step count and its wall time."""
    from facerefl.models.clock import ElapsedTime
    from facerefl.tasks.train_all import resume_point

    common = ["experiment=light", "logger=csv", "callbacks=default",
              "callbacks.model_checkpoint.every_n_train_steps=2", "trainer.val_check_interval=100"]
    first = train(compose_train(tmp_path, [*common, "trainer.max_steps=4"]))
    clock = next(c for c in first.trainer.callbacks if isinstance(c, ElapsedTime))
    assert clock.seconds > 0
    last = resume_point(tmp_path / "run")
    assert last is not None and resume_point(tmp_path / "elsewhere") is None
    stored = torch.load(last, weights_only=True, map_location="cpu")
    assert stored["global_step"] == 4
    saved_s = next(v["seconds"] for k, v in stored["callbacks"].items() if "ElapsedTime" in k)
    second = train(compose_train(tmp_path, [*common, "trainer.max_steps=6", f"ckpt_path={last}"]))
    assert second.trainer.global_step == 6
    resumed = next(c for c in second.trainer.callbacks if isinstance(c, ElapsedTime))
    assert resumed.seconds > saved_s
