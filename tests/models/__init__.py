"""Tests of the models package: feature pipeline, model contract."""
