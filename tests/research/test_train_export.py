"""Training, checkpoints, export and evaluation: determinism, hooks, Ctrl-C, ONNX parity on real bars, CLI."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from engine.cli.app import main  # noqa: E402
from models.card import load_card, validate_artifact  # noqa: E402
from models.features import feature_matrix, scale  # noqa: E402
from models.onnx_model import OnnxSignalModel  # noqa: E402
from research.config import train_config_from_dict  # noqa: E402
from research.export import export  # noqa: E402
from research.loader import WindowDataset, batch_order, iter_batches, make_loader  # noqa: E402
from research.train import (  # noqa: E402
    TrainingInterrupted,
    load_checkpoint,
    net_from_checkpoint,
    prepare_data,
    train,
)
from tests.research.conftest import tiny_raw  # noqa: E402

pytestmark = pytest.mark.research

ROOT = Path(__file__).resolve().parents[2]
REAL_RANGES = {"train": "2023-01-01..2023-06-30", "validation": "2023-07-01..2023-09-30",
               "test": "2023-10-01..2023-12-31"}


@pytest.fixture(scope="module")
def tiny_cfg(tiny_catalog: Path):
    return train_config_from_dict(tiny_raw(tiny_catalog))


@pytest.fixture(scope="module")
def tiny_data(tiny_cfg):
    return prepare_data(tiny_cfg)


def _cfg(catalog: Path, run_dir: Path, **sections):
    return train_config_from_dict(tiny_raw(catalog, run_dir, **sections))


def test_loader_gathers_exactly_the_windows(tiny_data) -> None:
    ds = WindowDataset(tiny_data, "train")
    assert ds.features.data_ptr() == tiny_data.features.ctypes.data  # shared, not copied
    order = batch_order(ds, shuffle=True, generator=torch.Generator().manual_seed(0))
    assert sorted(order.tolist()) == list(range(len(ds)))  # every window once per epoch
    batch = next(iter_batches(ds, 64, order))
    want = tiny_data.windows("train")[order[:64].numpy()]
    np.testing.assert_array_equal(batch.x.numpy(), want)
    np.testing.assert_array_equal(batch.y.numpy(), tiny_data.splits["train"].labels[order[:64].numpy()])
    first = next(iter(make_loader(ds, 64)))  # the same gather behind a torch DataLoader, in order
    np.testing.assert_array_equal(first.x.numpy(), tiny_data.windows("train")[:64])
    weighted = batch_order(ds, weighted=True, generator=torch.Generator().manual_seed(0))
    drawn = tiny_data.splits["train"].labels[weighted.numpy()]
    assert abs(drawn.mean() - 0.5) < 0.05  # class-balanced draws


def test_same_seed_gives_identical_weights(tiny_catalog: Path, tiny_data, tmp_path: Path) -> None:
    runs = []
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        cfg = _cfg(tiny_catalog, tmp_path / name, train={"seed": seed, "sampler": "weighted"},
                   model={"dropout": 0.3})
        train(cfg, data=tiny_data)
        runs.append(load_checkpoint(tmp_path / name)["state_dict"])
    a, b, c = runs
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_hooks_early_stopping_and_run_json(tiny_catalog: Path, tiny_data, tmp_path: Path) -> None:
    seen: list[tuple[int, dict]] = []
    cfg = _cfg(tiny_catalog, tmp_path / "es", train={"epochs": 6, "patience": 1, "lr": 1e-12})
    result = train(cfg, data=tiny_data, on_epoch=lambda e, m: seen.append((e, m)))
    assert result.status == "early_stopped"
    assert result.epochs_run == 2
    assert result.best_epoch == 1
    assert [e for e, _ in seen] == [1, 2]
    for key in ("train_loss", "val_loss", "val_accuracy", "val_precision", "val_recall", "val_f1",
                "val_pr_auc", "val_roc_auc", "lr", "samples_per_s", "data_share"):
        assert np.isfinite(seen[0][1][key]), key
    run = json.loads((tmp_path / "es" / "run.json").read_text())
    assert run["result"]["status"] == "early_stopped"
    assert len(run["result"]["history"]) == 2
    assert run["result"]["data"]["splits"]["train"]["samples"] == tiny_data.splits["train"].n

    cfg = _cfg(tiny_catalog, tmp_path / "pr", train={"epochs": 5})
    pruned = train(cfg, data=tiny_data, should_prune=lambda e, m: e == 2)
    assert pruned.status == "pruned"
    assert pruned.epochs_run == 2
    assert pruned.checkpoint is not None


def test_ctrl_c_keeps_the_best_checkpoint(tiny_catalog: Path, tiny_data, tmp_path: Path) -> None:
    def interrupt(epoch: int, metrics: dict) -> None:
        if epoch == 2:
            raise KeyboardInterrupt

    cfg = _cfg(tiny_catalog, tmp_path / "int", train={"epochs": 5})
    with pytest.raises(TrainingInterrupted) as info:
        train(cfg, data=tiny_data, on_epoch=interrupt)
    result = info.value.result
    assert isinstance(info.value, KeyboardInterrupt)
    assert result.status == "interrupted"
    assert result.epochs_run == 2
    assert result.best_epoch >= 1
    ckpt = load_checkpoint(tmp_path / "int")
    assert ckpt["epoch"] == result.best_epoch
    net, _ = net_from_checkpoint(ckpt)  # loadable
    assert json.loads((tmp_path / "int" / "run.json").read_text())["result"]["status"] == "interrupted"
    export(tmp_path / "int", tmp_path / "int_model")  # and exportable


@pytest.mark.parametrize(
    ("architecture", "embedding"), [("mlp", 3), ("lstm", 0), ("gru", 3), ("cnn_lstm", 2)]
)
def test_export_matches_torch_on_real_windows(architecture: str, embedding: int, real_catalog: Path,
                                              tmp_path: Path) -> None:
    cfg = train_config_from_dict(tiny_raw(
        real_catalog, tmp_path / "run", data={**REAL_RANGES, "lookback": 16},
        model={"architecture": architecture, "hidden": 12, "layers": 1, "embedding_dim": embedding},
        train={"epochs": 1, "batch_size": 256},
    ))
    data = prepare_data(cfg)
    train(cfg, data=data, command="pytest")
    out = tmp_path / "model"
    result = export(tmp_path / "run", out)
    card, _ = validate_artifact(out)
    assert result.max_abs_diff <= 1e-5
    assert card.architecture == architecture
    assert card.opset == 17
    assert card.lookback == 16
    assert (card.asset_map is not None) == bool(embedding)
    assert card.training.command == f"pytest && sigtrade export {tmp_path / 'run'} --out {out}"
    v = card.metrics["validation"]
    assert len(v["prob_quantiles"]) == 101
    assert 0.0 < v["f1"] <= 1.0
    assert card.threshold == v["threshold"]
    assert list(card.scaler.mean) == pytest.approx(data.mean.tolist())

    # real windows, rebuilt from the card alone, through the engine's runtime
    from engine.catalog import read_frame

    model = OnnxSignalModel.load(out)
    net, _ = net_from_checkpoint(load_checkpoint(tmp_path / "run"))
    for symbol in ("AAPL", "SPY"):
        frame = read_frame(real_catalog, symbol, "1-HOUR").loc["2023-10-01":"2023-12-31"]
        x = scale(feature_matrix(read_frame(real_catalog, symbol, "1-HOUR").loc[:"2023-12-31"]),
                  card.scaler.mean, card.scaler.std)[-len(frame):]
        windows = np.lib.stride_tricks.sliding_window_view(x, 16, axis=0).transpose(0, 2, 1)
        ids = np.full(len(windows), card.asset_map[symbol], np.int64) if card.asset_map else None
        got = model.predict(windows, ids, chunk_size=97)  # odd chunks: a dynamic batch axis
        with torch.no_grad():
            want = net(torch.from_numpy(np.ascontiguousarray(windows)),
                       None if ids is None else torch.from_numpy(ids)).double().numpy()
        assert len(windows) > 400
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_cli_train_export_evaluate(tiny_catalog: Path, tmp_path: Path, capsys) -> None:
    config = tmp_path / "tiny.toml"
    config.write_text(
        f'[data]\ncatalog = "{tiny_catalog}"\nlookback = 12\ntrain = "..2023-03-31"\n'
        'validation = "2023-04-01..2023-05-15"\ntest = "2023-05-16.."\n'
        '[label]\nhorizon = 3\n[model]\narchitecture = "gru"\nhidden = 8\nlayers = 1\n'
        '[train]\nepochs = 1\n', encoding="utf-8")
    run = tmp_path / "runs" / "tiny"
    main(["train", str(config), "--set", f'output.run_dir="{run}"', "--quiet"])
    assert "checkpoint:" in capsys.readouterr().err
    model = tmp_path / "models" / "tiny_gru"
    main(["export", str(run), "--out", str(model)])
    assert "valid" in capsys.readouterr().err
    card = load_card(model)
    train_cmd = shlex.join(["sigtrade", "train", str(config), "--set", f'output.run_dir="{run}"'])
    assert card.training.command == f"{train_cmd} && " + shlex.join(
        ["sigtrade", "export", str(run), "--out", str(model)])
    main(["models", "validate", str(model)])
    # the fused ONNX GRU op on request, recorded in the card; the same probabilities as the default graph
    fused = tmp_path / "models" / "tiny_gru_fused"
    main(["export", str(run), "--out", str(fused), "--gru-graph", "fused"])
    assert load_card(fused).training.command.endswith(
        shlex.join(["sigtrade", "export", str(run), "--out", str(fused), "--gru-graph", "fused"]))
    ops = {g: {n.op_type for n in onnx.load(str(d / "model.onnx")).graph.node}
           for g, d in (("unrolled", model), ("fused", fused))}
    assert "GRU" in ops["fused"]
    assert "GRU" not in ops["unrolled"]
    windows = np.random.default_rng(0).standard_normal((300, 12, 19)).astype(np.float32)
    np.testing.assert_allclose(OnnxSignalModel.load(model).predict(windows),
                               OnnxSignalModel.load(fused).predict(windows), rtol=0, atol=1e-5)
    with pytest.raises(SystemExit) as exc:
        main(["export", str(run), "--out", str(tmp_path / "never"), "--gru-graph", "fusd"])
    assert exc.value.code == 2
    assert "did you mean 'fused'" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()
    out = tmp_path / "eval"
    main(["evaluate", str(model), "--split", "test", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "PR-AUC" in printed
    assert "threshold grid" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "test"
    assert 0.0 <= metrics["roc_auc"] <= 1.0
    for name in ("pr_curve.png", "roc_curve.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    grid = (out / "threshold_grid.csv").read_text().splitlines()
    assert grid[0].startswith("threshold,precision,recall,f1")
    assert len(grid) == 100

    with pytest.raises(SystemExit) as exc:
        main(["train", str(config), "--set", "model.architecure=lstm"])
    assert exc.value.code == 2
    assert "did you mean 'architecture'" in capsys.readouterr().err


def test_cli_without_torch_says_how_to_install(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from engine.cli.app import main\n"
        f"main(['train', {str(tmp_path / 'x.toml')!r}])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 6, proc.stderr
    assert "pip install -e '.[research]'" in proc.stderr
