"""The input contract written into ``model.onnx`` itself, and checked against the card on load.

The card says how to build a model's inputs; the sha256 in the card pins ``model.onnx``,
but nothing pinned the card: a card whose feature list was reordered, renamed or
shortened after export still matched the graph's shapes, and the network silently read
RSI where it was trained on MACD. So the export records, in the ONNX file's
``metadata_props`` (covered by the sha256), what the network was trained on:

``sigtrade.contract``     version of this contract (``"1"``)
``sigtrade.feature_set``  ``name@version`` of the feature pipeline, e.g. ``seed14@1``
``sigtrade.features``     the ordered input columns (JSON list)
``sigtrade.lookback``     bars per window
``sigtrade.scaler``       ``{"kind", "mean", "std"}`` fitted on the training split (JSON)
``sigtrade.asset_map``    symbol -> asset id (JSON; only for models with asset ids)

:func:`check_contract` compares them with the card and names what moved. A model
exported before this contract existed carries none of it and is refused with the command
that re-exports it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from models.errors import CardMismatchError, ModelContractError

CONTRACT_VERSION = "1"
PREFIX = "sigtrade."
KEYS = ("contract", "feature_set", "features", "lookback", "scaler", "asset_map")


def contract_metadata(
    *,
    feature_set: str,
    version: str,
    features: Sequence[str],
    lookback: int,
    scaler_mean: Sequence[float],
    scaler_std: Sequence[float],
    asset_map: Mapping[str, int] | None = None,
) -> dict[str, str]:
    """The ``metadata_props`` entries of the input contract (insertion order is stable)."""
    meta = {
        f"{PREFIX}contract": CONTRACT_VERSION,
        f"{PREFIX}feature_set": f"{feature_set}@{version}",
        f"{PREFIX}features": json.dumps(list(features)),
        f"{PREFIX}lookback": str(int(lookback)),
        f"{PREFIX}scaler": json.dumps({"kind": "standard", "mean": [float(v) for v in scaler_mean],
                                       "std": [float(v) for v in scaler_std]}),
    }
    if asset_map is not None:
        meta[f"{PREFIX}asset_map"] = json.dumps({str(k): int(v) for k, v in asset_map.items()}, sort_keys=True)
    return meta


def card_contract(card: Any) -> dict[str, str]:
    """The contract entries a :class:`~models.card.ModelCard` implies."""
    return contract_metadata(
        feature_set=card.feature_set.name, version=card.feature_set.version,
        features=card.feature_set.features, lookback=card.lookback,
        scaler_mean=card.scaler.mean, scaler_std=card.scaler.std, asset_map=card.asset_map,
    )


def _feature_change(card_feats: Sequence[str], trained: Sequence[str]) -> str:
    """Say how the card's feature list differs from the trained one, naming the feature."""
    card_feats, trained = list(card_feats), list(trained)
    missing = [f for f in trained if f not in card_feats]
    extra = [f for f in card_feats if f not in trained]
    if missing and extra and len(card_feats) == len(trained):
        i = next(i for i, (a, b) in enumerate(zip(card_feats, trained, strict=True)) if a != b)
        return (f"position {i} is '{card_feats[i]}' in the card but '{trained[i]}' in model.onnx "
                f"(renamed or replaced)")
    if missing:
        return (f"the card lists {len(card_feats)} features, the network was trained on {len(trained)}: "
                f"{', '.join(repr(f) for f in missing)} {'is' if len(missing) == 1 else 'are'} missing"
                + (f" and {', '.join(repr(f) for f in extra)} not trained on" if extra else ""))
    if extra:
        return f"the card adds {', '.join(repr(f) for f in extra)}, which the network was not trained on"
    for i, (a, b) in enumerate(zip(card_feats, trained, strict=True)):
        if a != b:
            return (f"'{a}' is at position {i} in the card but at position {trained.index(a)} in model.onnx "
                    f"(the order the network was trained on)")
    return "the lists differ"


def check_contract(card: Any, metadata: Mapping[str, str], card_file: str, onnx_file: str, folder: str) -> None:
    """Refuse a card that disagrees with the contract recorded in ``model.onnx``.

    Raises
    ------
    ModelContractError
        ``model.onnx`` carries no contract (exported by an older sigtrade) or one of a newer
        version.
    CardMismatchError
        A field of the card differs from what the network was trained on; the message
        names the feature that moved.
    """
    found = {k[len(PREFIX):]: v for k, v in metadata.items() if k.startswith(PREFIX)}
    if "contract" not in found:
        raise ModelContractError(
            f"{onnx_file}: carries no input contract (ordered features, lookback, scaler); it was exported "
            f"before sigtrade recorded one, so a card edited since cannot be caught. Re-export it from its "
            f"run: `sigtrade export runs/<name> --out {folder}` (the card's training.command shows how it was "
            f"made; the shipped demo models are rebuilt by `python -m research.demo_models`)"
        )
    if found["contract"] != CONTRACT_VERSION:
        raise ModelContractError(
            f"{onnx_file}: input contract version {found['contract']} is not {CONTRACT_VERSION}, the one "
            "this sigtrade reads; use the sigtrade version that exported it, or re-export"
        )
    want = {k[len(PREFIX):]: v for k, v in card_contract(card).items()}
    restore = "restore the card that was exported with the model (or re-export both together)"
    try:
        trained_feats = json.loads(found.get("features", "[]"))
        trained_scaler = json.loads(found.get("scaler", "{}"))
        trained_assets = json.loads(found["asset_map"]) if "asset_map" in found else None
    except json.JSONDecodeError as exc:
        raise ModelContractError(f"{onnx_file}: unreadable input contract ({exc}); re-export the model") from None
    if found.get("feature_set") != want["feature_set"]:
        raise CardMismatchError(card_file, "feature_set", f"{found.get('feature_set')} (what model.onnx was "
                                "trained on)", want["feature_set"], restore)
    if list(card.feature_set.features) != trained_feats:
        raise CardMismatchError(
            card_file, "feature_set.features", f"the trained order {trained_feats}",
            list(card.feature_set.features), f"{_feature_change(card.feature_set.features, trained_feats)}; {restore}",
        )
    if found.get("lookback") != want["lookback"]:
        raise CardMismatchError(card_file, "lookback", f"{found.get('lookback')} (what model.onnx was trained on)",
                                card.lookback, restore)
    for part in ("mean", "std"):
        trained = [float(v) for v in trained_scaler.get(part, [])]
        if list(getattr(card.scaler, part)) != trained:
            bad = next((i for i, (a, b) in enumerate(zip(getattr(card.scaler, part), trained, strict=False))
                        if a != b), min(len(trained), len(getattr(card.scaler, part))))
            name = trained_feats[bad] if bad < len(trained_feats) else f"#{bad}"
            raise CardMismatchError(card_file, f"scaler.{part}", f"the training split's values ({name}: "
                                    f"{trained[bad] if bad < len(trained) else 'none'})",
                                    f"{getattr(card.scaler, part)[bad] if bad < len(getattr(card.scaler, part)) else 'none'}",
                                    restore)
    card_assets = dict(card.asset_map) if card.asset_map is not None else None
    if card_assets != trained_assets:
        raise CardMismatchError(card_file, "asset_map", f"{trained_assets} (what model.onnx was trained on)",
                                card_assets, restore)
