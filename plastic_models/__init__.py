"""Plastic recurrent networks (differentiable plasticity, Miconi, Clune & Stanley 2018)."""

from plastic_models.config import PlasticConfig
from plastic_models.network import PlasticNetwork
from plastic_models.reference import reference_forward

__all__ = ["PlasticConfig", "PlasticNetwork", "reference_forward"]
