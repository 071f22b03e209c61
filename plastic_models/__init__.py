"""Plastic recurrent networks (differentiable plasticity, Miconi, Clune & Stanley 2018;
neuromodulation, Miconi et al. 2019): rules, modulation, the plastic RNN and LSTM."""

from plastic_models.config import PlasticConfig, PlasticLSTMConfig
from plastic_models.lstm import PlasticLSTM
from plastic_models.network import PlasticNetwork
from plastic_models.reference import reference_forward, reference_lstm_forward
from plastic_models.rules import DecayRule, Rule, get_rule, register_rule

__all__ = [
    "DecayRule",
    "PlasticConfig",
    "PlasticLSTM",
    "PlasticLSTMConfig",
    "PlasticNetwork",
    "Rule",
    "get_rule",
    "reference_forward",
    "reference_lstm_forward",
    "register_rule",
]
