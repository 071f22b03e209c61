"""Non-plastic baselines (Elman RNN, LSTM, GRU) with the plastic networks' interface."""

from baselines.recurrent import BaselineConfig, Cell, RecurrentBaseline

__all__ = ["BaselineConfig", "Cell", "RecurrentBaseline"]
