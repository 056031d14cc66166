"""Evaluation: loading trained runs, playing episodes, videos."""
