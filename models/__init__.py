"""The ONNX signal contract: model cards, the feature pipeline, ONNX inference, ensembles.

Never imports torch: a user who only backtests and paper-trades installs the core.
Model artifacts (``models/<name>/model.onnx`` + ``card.json``) live beside this package.
"""
