"""Errors raised by the ONNX signal contract (model cards, feature pipeline, inference).

``models`` may not import ``engine`` (the two layers are independent), so this module
defines its own small tree. The CLI, the composition root, registers
:class:`ModelContractError` with its one error handler, which prints the message without
a traceback and exits with :attr:`ModelContractError.exit_code`.

Every message says what was expected, what was found, and what to do.
"""

from __future__ import annotations


class ModelContractError(Exception):
    """A model, its card, its feature set or the data given to it break the contract."""

    exit_code = 4


class FeatureSetError(ModelContractError):
    """A card or a caller names a feature set (name or version) that is not implemented."""


class ModelDataError(ModelContractError):
    """The bars given to the feature pipeline are unusable.

    Missing columns, non-finite or non-positive prices, timestamps out of order, or a
    history too short for the feature warm-up plus the model's lookback.
    """


class CardMismatchError(ModelContractError):
    """A model artifact disagrees with its card, field by field.

    The message names the file, the field, the expected and the found value; the same
    facts are kept as attributes for programs (the CLI, tests).
    """

    def __init__(self, file: str, field: str, expected: object, found: object, hint: str) -> None:
        self.file = file
        self.field = field
        self.expected = expected
        self.found = found
        super().__init__(f"{file}: {field}: expected {expected}, found {found}; {hint}")
