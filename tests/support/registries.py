"""The registered parts as the registries hold them. Tests parametrize over these lists, so a
newly registered rule, model family or task is tested without editing one."""

from __future__ import annotations

from typing import get_args

from plastic_models.config import AlphaGranularity, ModulationName
from plastic_models.rules import REGISTRY
from sweep.models import FAMILIES
from sweep.tasks import TASKS, task_learner

RULES = list(REGISTRY)
MODULATIONS = list(get_args(ModulationName))
ALPHAS = list(get_args(AlphaGranularity))
# the families whose networks are plastic: a rule is one of their hyperparameters
PLASTIC_FAMILIES = [name for name, family in FAMILIES.items() if "rule" in family.parameters]
TASK_NAMES = list(TASKS)
REWARD_TASKS = [task for task in TASKS if task_learner(task) == "a2c"]  # learn from reward
SUPERVISED_TASKS = [task for task in TASKS if task_learner(task) == "supervised"]
