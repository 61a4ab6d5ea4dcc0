"""CLI: ``sigtrade models list | inspect | validate`` - the shipped ONNX signal models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console(emoji=False)
models_app = typer.Typer(
    name="models",
    help="List, inspect and validate ONNX signal models (model.onnx + card.json).",
    no_args_is_help=True,
)


def _summary(folder: Path) -> dict[str, Any]:
    """One row of ``models list``; a broken artifact is listed with its error."""
    from models.card import CARD_FILE, card_kind, load_card, validate_artifact
    from models.ensemble import ENSEMBLE_FILE, load_ensemble
    from models.errors import ModelContractError

    row: dict[str, Any] = {"name": folder.name, "kind": "?", "architecture": "", "bar": "",
                           "lookback": "", "features": "", "threshold": "", "f1": "", "valid": ""}
    try:
        if (folder / ENSEMBLE_FILE).is_file():
            ensemble = load_ensemble(folder)
            members = ensemble.members
            row.update(
                name=ensemble.card.name, kind="ensemble",
                architecture=f"{ensemble.card.combiner}: "
                + ", ".join(m.card.architecture for m in members),
                bar=ensemble.card.bar,
                lookback=",".join(str(m.lookback) for m in members),
                features=",".join(str(m.n_features) for m in members),
                threshold=f"{ensemble.card.threshold:.3f}",
            )
        elif card_kind(folder) == "policy":
            from models.policy import validate_policy

            pcard, _ = validate_policy(folder)
            sharpe = pcard.metrics.get("validation", {}).get("net_sharpe")
            row.update(name=pcard.name, kind="policy", architecture=f"{pcard.algorithm}: {'/'.join(pcard.actions)}",
                       bar=pcard.bar, lookback=str(pcard.lookback), features=str(pcard.n_features),
                       f1=f"Sharpe {sharpe:.2f}" if isinstance(sharpe, float) else "-")
        else:
            card = load_card(folder / CARD_FILE)
            f1 = card.validation_metric("f1")
            row.update(
                name=card.name, kind="single", architecture=card.architecture, bar=card.bar,
                lookback=str(card.lookback), features=str(card.n_features),
                threshold=f"{card.threshold:.3f}",
                f1=f"{f1:.3f}" if isinstance(f1, int | float) else "-",
            )
            validate_artifact(folder)
        row["valid"] = "[green]yes[/]"
    except ModelContractError as exc:
        row["valid"] = f"[red]no[/]: {escape(str(exc))}"
    return row


def list_models(
    directory: Annotated[
        Path, typer.Argument(help="Folder holding one sub-folder per model.")
    ] = Path("models"),
) -> None:
    """List the models and ensembles under DIRECTORY, each validated against its card."""
    from models.card import CARD_FILE
    from models.ensemble import ENSEMBLE_FILE

    if not directory.is_dir():
        from models.errors import ModelContractError

        raise ModelContractError(f"{directory}: no such folder of models")
    folders = sorted(
        p for p in directory.iterdir()
        if p.is_dir() and ((p / CARD_FILE).is_file() or (p / ENSEMBLE_FILE).is_file())
    )
    if not folders:
        console.print(f"no models under {directory} (a model folder holds model.onnx + card.json)")
        return
    table = Table(title=f"models in {directory}")
    for col in ("name", "kind", "architecture", "bar", "lookback", "features", "threshold",
                "validation F1", "valid"):
        table.add_column(col, overflow="fold")
    for folder in folders:
        r = _summary(folder)
        table.add_row(*(escape(str(r[k])) for k in ("name", "kind", "architecture", "bar", "lookback",
                                                   "features", "threshold", "f1")), r["valid"])
    console.print(table)


def inspect(path: Annotated[Path, typer.Argument(help="Model or ensemble folder.")]) -> None:
    """Print a model card (or an ensemble card and its members) in full."""
    import msgspec

    from models.card import CARD_FILE, load_card, validate_artifact
    from models.ensemble import ENSEMBLE_FILE, load_ensemble_card
    from models.errors import ModelContractError

    if (path / ENSEMBLE_FILE).is_file():
        ecard = load_ensemble_card(path)
        console.print_json(json.dumps(msgspec.to_builtins(ecard)))
        return
    from models.card import card_kind

    if card_kind(path) == "policy":
        from models.policy import load_policy_card, validate_policy

        console.print_json(json.dumps(msgspec.to_builtins(load_policy_card(path))))
        try:
            _, warnings = validate_policy(path)
        except ModelContractError as exc:
            console.print(f"[bold red]invalid:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(exc.exit_code) from None
        for warning in warnings:
            console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
        console.print("[green]valid[/]")
        return
    if not (path / CARD_FILE).is_file():
        raise ModelContractError(f"{path}: not a model folder (expected {CARD_FILE} or {ENSEMBLE_FILE})")
    card = load_card(path)
    data = msgspec.to_builtins(card)
    data["scaler"] = {
        "kind": card.scaler.kind,
        "columns": {f: {"mean": m, "std": s} for f, m, s in
                    zip(card.feature_set.features, card.scaler.mean, card.scaler.std, strict=False)},
    }
    quantiles = data.get("metrics", {}).get("validation", {}).get("prob_quantiles")
    if isinstance(quantiles, list) and len(quantiles) > 5:
        data["metrics"]["validation"]["prob_quantiles"] = (
            f"{len(quantiles)} values, p0={quantiles[0]:.4f} p50={quantiles[len(quantiles) // 2]:.4f} "
            f"p100={quantiles[-1]:.4f}"
        )
    console.print_json(json.dumps(data))
    try:
        _, warnings = validate_artifact(path)
    except ModelContractError as exc:
        console.print(f"[bold red]invalid:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(exc.exit_code) from None
    for warning in warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    console.print("[green]valid[/]")


def validate(path: Annotated[Path, typer.Argument(help="Model or ensemble folder.")]) -> None:
    """Validate a model (card schema, sha256, ONNX graph vs card, output in [0, 1]) or an ensemble.

    Prints "valid" and exits 0, or prints what is wrong and exits 4.
    """
    from models.card import card_kind, validate_artifact
    from models.ensemble import ENSEMBLE_FILE, load_ensemble

    if card_kind(path) == "policy":
        from models.policy import validate_policy

        pcard, warnings = validate_policy(path)
        for warning in warnings:
            console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
        console.print(
            f"valid: policy '{pcard.name}' ({pcard.algorithm}, actions {'/'.join(pcard.actions)}, bar {pcard.bar}, "
            f"lookback {pcard.lookback}, {pcard.n_features} features + {pcard.n_state} state inputs"
            f"{', gate ' + pcard.gate.name if pcard.gate else ''}, sha256 {pcard.onnx_sha256[:12]}...)",
            highlight=False,
        )
        return
    if (path / ENSEMBLE_FILE).is_file():
        ensemble = load_ensemble(path)
        console.print(
            f"valid: ensemble '{ensemble.name}' ({ensemble.card.combiner}, "
            f"{len(ensemble.members)} members, bar {ensemble.card.bar})",
            highlight=False,
        )
        return
    card, warnings = validate_artifact(path)
    for warning in warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    console.print(
        f"valid: model '{card.name}' ({card.architecture}, bar {card.bar}, lookback "
        f"{card.lookback}, {card.n_features} features, sha256 {card.onnx_sha256[:12]}...)"
        + ("" if card.precision is None else
           f"; runs in {card.precision.dtype} on {card.precision.runtime} (checked at export: "
           f"{card.precision.windows:,} real windows within {card.precision.max_abs_diff:.1e} of fp32)"),
        highlight=False,
    )


models_app.command("list")(list_models)
models_app.command("inspect")(inspect)
models_app.command("validate")(validate)


def register(app: typer.Typer) -> None:
    """Register the ``models`` sub-app on *app* (once)."""
    if not any(group.typer_instance is models_app for group in app.registered_groups):
        app.add_typer(models_app, name="models")
