"""Ensembles: the ensemble card, the four combiners, and what is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.ensemble import (
    EnsembleCard,
    EnsembleMember,
    load_ensemble,
    load_ensemble_card,
    rank_against_quantiles,
    write_ensemble_card,
)
from models.errors import CardMismatchError, ModelContractError
from models.features import FEATURE_SET
from tests.models.onnx_factory import make_gru_artifact, make_mlp_artifact

QUANTILES = np.linspace(0.2, 0.8, 101)  # a member whose validation probabilities span 0.2..0.8


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three members of different architectures, lookbacks and feature columns."""
    root = tmp_path_factory.mktemp("members")
    make_mlp_artifact(root / "mlp", f1=0.60, threshold=0.45, prob_quantiles=QUANTILES)
    make_gru_artifact(root / "gru", lookback=12, features=FEATURE_SET.features[:10], f1=0.50,
                      threshold=0.55, prob_quantiles=np.linspace(0.4, 0.6, 101))
    make_gru_artifact(root / "gru_ids", lookback=16, with_asset_ids=True, f1=0.30,
                      prob_quantiles=np.linspace(0.0, 1.0, 101) ** 2)
    make_mlp_artifact(root / "daily", bar="1-DAY", prob_quantiles=QUANTILES)
    make_mlp_artifact(root / "no_f1", f1=None)
    return root


def _ensemble(tmp_path: Path, members: Path, combiner: str, names: list[str],
              weights: list[float | None] | None = None, bar: str = "1-HOUR") -> Path:
    folder = tmp_path / f"ens_{combiner}"
    folder.mkdir()
    weights = weights or [None] * len(names)
    card = EnsembleCard(
        name=folder.name, bar=bar, combiner=combiner,  # type: ignore[arg-type]
        members=tuple(EnsembleMember(path=str(members / n), weight=w)
                      for n, w in zip(names, weights, strict=True)),
        threshold=0.5,
    )
    write_ensemble_card(card, folder)
    return folder


def test_card_round_trip_and_relative_member_paths(tmp_path: Path, members: Path) -> None:
    folder = members / "ens_rel"
    folder.mkdir(exist_ok=True)
    card = EnsembleCard(name="ens_rel", bar="1-HOUR", combiner="weighted_mean",
                        members=(EnsembleMember(path="../mlp", weight=2.0),
                                 EnsembleMember(path=str(members / "gru"), weight=1.0)))
    write_ensemble_card(card, folder)
    assert load_ensemble_card(folder) == card
    ensemble = load_ensemble(folder)
    assert [m.name for m in ensemble.members] == ["mlp", "gru"]
    assert [m.lookback for m in ensemble.members] == [24, 12]
    assert [m.n_features for m in ensemble.members] == [19, 10]


def test_weighted_mean(tmp_path: Path, members: Path) -> None:
    ens = load_ensemble(_ensemble(tmp_path, members, "weighted_mean", ["mlp", "gru"], [3.0, 1.0]))
    p = np.array([[0.2, 0.8, np.nan], [0.6, 0.4, 0.5]])
    np.testing.assert_allclose(ens.combine(p)[:2], [0.3, 0.7])
    assert np.isnan(ens.combine(p)[2])


def test_f1_weighted_takes_the_cards_validation_f1(tmp_path: Path, members: Path) -> None:
    ens = load_ensemble(_ensemble(tmp_path, members, "f1_weighted", ["mlp", "gru", "gru_ids"]))
    np.testing.assert_allclose(ens.weights, [0.60, 0.50, 0.30])
    p = np.array([[1.0], [0.0], [0.5]])
    np.testing.assert_allclose(ens.combine(p), [(0.60 + 0.15) / 1.40])


def test_f1_weighted_refuses_a_member_without_f1(tmp_path: Path, members: Path) -> None:
    folder = _ensemble(tmp_path, members, "f1_weighted", ["mlp", "no_f1"])
    with pytest.raises(CardMismatchError, match=r"no_f1/card.json: metrics.validation.f1") as info:
        load_ensemble(folder)
    assert "f1_weighted" in str(info.value)


def test_rank_average_ranks_against_each_members_validation_quantiles(
    tmp_path: Path, members: Path
) -> None:
    ens = load_ensemble(_ensemble(tmp_path, members, "rank_average", ["mlp", "gru"]))
    # mlp quantiles 0.2..0.8, gru 0.4..0.6: 0.5 is the median of both; 0.65 is mlp's 75th
    # percentile and beyond gru's maximum
    p = np.array([[0.5, 0.65, 0.1, np.nan], [0.5, 0.65, 0.45, 0.5]])
    out = ens.combine(p)
    np.testing.assert_allclose(out[:3], [0.5, (0.75 + 1.0) / 2, (0.0 + 0.25) / 2])
    assert np.isnan(out[3])


def test_rank_against_quantiles_handles_ties_and_tails() -> None:
    q = np.r_[np.zeros(51), np.linspace(0.0, 1.0, 51)[1:]]  # half the mass exactly at 0
    assert rank_against_quantiles(np.array([0.0]), q)[0] == pytest.approx(0.25)  # mid-rank
    assert rank_against_quantiles(np.array([-1.0, 2.0]), q).tolist() == [0.0, 1.0]
    assert np.isnan(rank_against_quantiles(np.array([np.nan]), q)[0])


def test_rank_average_refuses_members_without_quantiles(tmp_path: Path, members: Path) -> None:
    folder = _ensemble(tmp_path, members, "rank_average", ["mlp", "no_f1"])
    with pytest.raises(CardMismatchError, match=r"metrics.validation.prob_quantiles: expected 101"):
        load_ensemble(folder)


def test_majority_vote_uses_each_members_own_threshold(tmp_path: Path, members: Path) -> None:
    ens = load_ensemble(_ensemble(tmp_path, members, "majority_vote", ["mlp", "gru", "gru_ids"]))
    # thresholds 0.45, 0.55, 0.5
    p = np.array([[0.46, 0.46, 0.10], [0.50, 0.56, 0.10], [0.50, 0.50, 0.10]])
    np.testing.assert_allclose(ens.combine(p), [2 / 3, 1.0, 0.0])


def test_members_must_share_the_bar(tmp_path: Path, members: Path) -> None:
    folder = _ensemble(tmp_path, members, "weighted_mean", ["mlp", "daily"], [1.0, 1.0])
    with pytest.raises(CardMismatchError, match=r"members\[1\].bar \(daily\): expected '1-HOUR', found '1-DAY'"):
        load_ensemble(folder)


@pytest.mark.parametrize(
    ("combiner", "weights", "message"),
    [
        ("weighted_mean", [1.0, None], r"members\[1\].weight: expected a weight >= 0, found null"),
        ("majority_vote", [1.0, None], r"members\[0\].weight: expected null for combiner 'majority_vote'"),
        ("weighted_mean", [0.0, 0.0], r"weights summing to more than 0"),
    ],
)
def test_weight_errors(tmp_path: Path, members: Path, combiner: str,
                       weights: list[float | None], message: str) -> None:
    folder = _ensemble(tmp_path, members, combiner, ["mlp", "gru"], weights)
    with pytest.raises(CardMismatchError, match=message):
        load_ensemble(folder)


def _write_raw(folder: Path, data: dict[str, Any]) -> Path:
    folder.mkdir()
    (folder / "ensemble.json").write_text(json.dumps(data))
    return folder


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"combiner": "median"}, "combiner"),
        ({"members": []}, "members"),
        ({"weights": [1, 2]}, "weights"),
        ({"threshold": -0.1}, "threshold"),
    ],
)
def test_ensemble_card_schema_errors_name_the_field(
    tmp_path: Path, members: Path, change: dict[str, Any], field: str
) -> None:
    data = {"name": "e", "bar": "1-HOUR", "combiner": "majority_vote",
            "members": [{"path": str(members / "mlp")}], **change}
    folder = _write_raw(tmp_path / "e", data)
    with pytest.raises(ModelContractError, match=rf"field '{field}'"):
        load_ensemble(folder)


def test_member_path_must_be_a_model(tmp_path: Path, members: Path) -> None:
    data = {"name": "e", "bar": "1-HOUR", "combiner": "majority_vote",
            "members": [{"path": "nowhere"}]}
    with pytest.raises(CardMismatchError, match=r"members\[0\].path: expected a model folder"):
        load_ensemble(_write_raw(tmp_path / "e", data))


def test_combine_checks_the_member_count(tmp_path: Path, members: Path) -> None:
    ens = load_ensemble(_ensemble(tmp_path, members, "majority_vote", ["mlp", "gru"]))
    with pytest.raises(ModelContractError, match=r"shape \(2, N\)"):
        ens.combine(np.zeros((3, 4)))
