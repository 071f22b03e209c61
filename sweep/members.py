"""Populations: K models of one family and one shape trained as one model (issue #22).

A population's parameters (and buffers) are the K members' stacked along a leading *member*
dimension: member k's slice of every tensor is member k's tensor. Its sequence interface
mirrors a lone model's with that dimension after time:

    forward(inputs (T, K, B, I)) -> outputs (T, K, B, O)
    initial_state(B, device) ; step(x_t (K, B, I), state) -> (y_t (K, B, O), state)

Member k of `stack_members(family, I, O, params, generators)` is exactly the lone model
`build_model(family, I, O, params[k])` reset from `generators[k]`: the stacker builds the K
lone models that way and stacks them, so a member starts bit for bit where a lone trial does.
Within a population the members share every setting of `shape_key` and may differ in the
rest (eta, clip, init scales).

Both kinds below keep the stacked tensors under the lone model's names (`Stacked.tensors()`)
and each member's lone model on the meta device (its settings, no memory): `member(k)`
rebuilds member k from it, with its own settings. `LoopMembers` runs any family (a plugin's
too): each member's slices through its own lone module in turn (bound to it once an episode
for its steps, `torch.func.functional_call` for a whole sequence), so it batches nothing and
is the reference the batched implementations are checked against. `Batched` runs a family's
batched computation (a `BatchedFamily`, beside the family: baselines/members.py,
plastic_models/members.py) on the stacked tensors; a family registers one in `BATCHED`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.func import functional_call

from baselines.members import RecurrentMembers
from plastic_models.members import PlasticLSTMMembers, PlasticNetworkMembers
from sweep.models import build_model, get_family

State = tuple[Tensor, ...]

# The settings members of one population share, per family (any family not named here: all
# of its settings).
SHAPE_SETTINGS: dict[str, tuple[str, ...]] = {
    "plastic": ("hidden", "rule", "alpha", "modulation", "fanout", "learn_eta", "input_mode"),
    "plastic_lstm": ("hidden", "rule", "alpha", "modulation", "fanout", "learn_eta"),
    "rnn": ("hidden",),
    "lstm": ("hidden",),
    "gru": ("hidden",),
}


def shape_key(family: str, params: Mapping[str, Any]) -> tuple[Any, ...]:
    """What must be equal for two configurations to train in one population: the family and
    its shape settings (with the family's defaults filled in)."""
    fam = get_family(family)
    names = SHAPE_SETTINGS.get(family, tuple(fam.parameters))
    config = fam.config(**dict(params))
    return (family, *((name, getattr(config, name)) for name in names))


class Members(nn.Module):
    """K members of one family and shape (see the module docstring)."""

    def __init__(self, models: Sequence[nn.Module]):
        super().__init__()
        if not models:
            raise ValueError("a population needs at least one member")
        self.size = len(models)
        # a plain list, not submodules: the members' parameters are the population's own
        self.lone: list[nn.Module] = list(models)

    @property
    def template(self) -> nn.Module:
        """A lone model of the population's family and shape."""
        return self.lone[0]

    @property
    def num_parameters(self) -> int:
        """Parameters of one member."""
        return int(self.template.num_parameters)  # type: ignore[arg-type]

    @property
    def neurons(self) -> int:
        return int(self.template.neurons)  # type: ignore[arg-type]

    def member(self, k: int) -> nn.Module:
        """A lone model holding a copy of member k's current parameters and buffers."""
        raise NotImplementedError

    def select(self, indices: Sequence[int]) -> None:
        """Keep only these members, in this order (a stopped member stops computing)."""
        raise NotImplementedError

    def initial_state(
        self, batch_size: int, device: torch.device | str, dtype: torch.dtype | None = None
    ) -> State:
        raise NotImplementedError

    def step(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        raise NotImplementedError


def _stacked(models: Sequence[nn.Module]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    params = {
        name: torch.stack([dict(m.named_parameters())[name].detach() for m in models])
        for name, _ in models[0].named_parameters()
    }
    buffers = {
        name: torch.stack([dict(m.named_buffers())[name] for m in models])
        for name, _ in models[0].named_buffers()
    }
    return params, buffers


class Stacked(Members):
    """The members' tensors stacked, under the lone model's names (a side table: nn.Module
    names cannot hold dots), with `member` and `select`. Each member's lone model is kept on
    the meta device (its settings, no memory) for its settings and to rebuild it."""

    def __init__(self, models: Sequence[nn.Module]):
        super().__init__(models)
        params, buffers = _stacked(models)
        self.names = list(params)
        self.buffer_names = list(buffers)
        self.stacked = nn.ParameterList([nn.Parameter(p) for p in params.values()])
        for i, b in enumerate(buffers.values()):
            self.register_buffer(f"buffer_{i}", b)
        self.lone = [copy.deepcopy(m).to("meta") for m in models]

    def tensors(self) -> dict[str, Tensor]:
        """Every stacked parameter and buffer by the lone model's name: (K, ...)."""
        tensors = dict(zip(self.names, self.stacked, strict=True))
        for i, name in enumerate(self.buffer_names):
            tensors[name] = getattr(self, f"buffer_{i}")
        return tensors

    def member(self, k: int) -> nn.Module:
        device = self.stacked[0].device if len(self.stacked) else torch.device("cpu")
        model = copy.deepcopy(self.lone[k]).to_empty(device=device)
        with torch.no_grad():
            for name, tensor in self.tensors().items():
                owner, _, leaf = name.rpartition(".")
                getattr(model.get_submodule(owner), leaf).copy_(tensor[k])
        return model

    def select(self, indices: Sequence[int]) -> None:
        index = torch.as_tensor(list(indices), dtype=torch.long)
        for i, p in enumerate(self.stacked):
            self.stacked[i] = nn.Parameter(p.detach()[index.to(p.device)].clone())
        for i in range(len(self.buffer_names)):
            b = getattr(self, f"buffer_{i}")
            setattr(self, f"buffer_{i}", b[index.to(b.device)].clone())
        self.lone = [self.lone[k] for k in index.tolist()]
        self.size = len(index)


class LoopMembers(Stacked):
    """Any family: stacked tensors, each member run through its own lone module in turn.
    At `initial_state` each member's slices of the stacked tensors are bound, once an
    episode, to a copy of its lone module that its steps then call directly: a step of a
    closed-loop task adds no slicing to the graph and no rebinding (`functional_call`'s walk
    of the module, per call), and the gradients sum as in the lone model. A population of one
    computes exactly its lone model's arithmetic."""

    _bound: list[Any] | None = None  # each member's lone module, bound (`_bound_copy`)

    def _slices(self) -> list[dict[str, Tensor]]:
        """Each member's slices of the stacked tensors, by the lone model's names."""
        tensors = self.tensors()
        return [{n: t[k] for n, t in tensors.items()} for k in range(self.size)]

    def _bind(self) -> list[Any]:
        """Each member's lone module bound to its slices of the stacked tensors (this
        episode's: `initial_state` binds anew)."""
        self._bound = [_bound_copy(m, t) for m, t in zip(self.lone, self._slices(), strict=True)]
        return self._bound

    def forward(self, inputs: Tensor) -> Tensor:
        outs = [
            functional_call(m, t, (inputs[:, k],), strict=True)
            for k, (m, t) in enumerate(zip(self.lone, self._slices(), strict=True))
        ]
        return torch.stack(outs, 1)

    def initial_state(
        self, batch_size: int, device: torch.device | str, dtype: torch.dtype | None = None
    ) -> State:
        dtype = dtype or self.stacked[0].dtype
        states = [m.initial_state(batch_size, device, dtype) for m in self._bind()]
        return _stack(states)

    def step(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        bound = self._bound or self._bind()
        outs, states = [], []
        for k, model in enumerate(bound):
            y, s = model.step(x_t[k], tuple(p[k] for p in state))
            outs.append(y)
            states.append(s)
        return _stack([(y,) for y in outs])[0], _stack(states)

    def select(self, indices: Sequence[int]) -> None:
        super().select(indices)
        self._bound = None  # bound to the tensors before


def _stack(parts: Sequence[Sequence[Tensor]]) -> State:
    """Each position of `parts` (one sequence of tensors per member) stacked along a new
    leading member dimension; for one member, its tensors unsqueezed (the same values)."""
    if len(parts) == 1:
        return tuple(p.unsqueeze(0) for p in parts[0])
    return tuple(torch.stack(p) for p in zip(*parts, strict=True))


def _bound_copy(module: nn.Module, tensors: Mapping[str, Tensor]) -> nn.Module:
    """A copy of `module` (a lone model on the meta device) whose parameters and buffers are
    `tensors`, by name: what `functional_call` does for one call, kept for many. Every
    parameter and buffer must be given (KeyError naming the first that is not)."""
    bound = copy.deepcopy(module)
    named: list[tuple[str, Tensor]] = [*bound.named_parameters(remove_duplicate=False)]
    named += [*bound.named_buffers(remove_duplicate=False)]
    for name, _ in named:
        owner, _, leaf = name.rpartition(".")
        sub = bound.get_submodule(owner)
        table = sub._parameters if leaf in sub._parameters else sub._buffers
        table[leaf] = tensors[name]  # type: ignore[assignment]  # a slice, not a Parameter
    return bound


class BatchedFamily(Protocol):
    """A family's batched computation (plastic_models/members.py, baselines/members.py): built
    from the K lone models (their settings), it computes on the stacked tensors by name."""

    def forward(self, tensors: Mapping[str, Tensor], inputs: Tensor) -> Tensor: ...

    def initial_state(
        self,
        tensors: Mapping[str, Tensor],
        batch_size: int,
        device: torch.device | str,
        dtype: torch.dtype,
    ) -> State: ...

    def step(
        self, tensors: Mapping[str, Tensor], x_t: Tensor, state: State
    ) -> tuple[Tensor, State]: ...


class Batched(Stacked):
    """A family's members as single batched ops (`family(lone models)` computes)."""

    def __init__(
        self, models: Sequence[nn.Module], family: Callable[[Sequence[Any]], BatchedFamily]
    ):
        super().__init__(models)
        self.make = family
        self.family = family(self.lone)

    def forward(self, inputs: Tensor) -> Tensor:
        return self.family.forward(self.tensors(), inputs)

    def initial_state(
        self, batch_size: int, device: torch.device | str, dtype: torch.dtype | None = None
    ) -> State:
        dtype = dtype or self.stacked[0].dtype
        return self.family.initial_state(self.tensors(), batch_size, device, dtype)

    def step(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        return self.family.step(self.tensors(), x_t, state)

    def select(self, indices: Sequence[int]) -> None:
        super().select(indices)
        self.family = self.make(self.lone)


# family -> a batched implementation, built from the K lone models
BATCHED: dict[str, Callable[[Sequence[nn.Module]], Members]] = {
    "rnn": partial(Batched, family=RecurrentMembers),
    "lstm": partial(Batched, family=RecurrentMembers),
    "gru": partial(Batched, family=RecurrentMembers),
    "plastic": partial(Batched, family=PlasticNetworkMembers),
    "plastic_lstm": partial(Batched, family=PlasticLSTMMembers),
}


def can_batch(family: str) -> bool:
    """Whether `family` has a batched implementation (LoopMembers runs every family)."""
    return family in BATCHED


def stack_members(
    family: str,
    input_size: int,
    output_size: int,
    params: Sequence[Mapping[str, Any]],
    generators: Sequence[torch.Generator],
    device: torch.device | str = "cpu",
    batched: bool = True,
) -> Members:
    """The population of lone models `build_model(family, I, O, params[k])` reset from
    `generators[k]`, on `device`; batched when the family has an implementation and `batched`
    (else `LoopMembers`). All `params` must have one `shape_key` (ValueError naming the first
    that differs)."""
    if len(params) != len(generators):
        raise ValueError(f"{len(params)} members' settings but {len(generators)} generators")
    keys = [shape_key(family, p) for p in params]
    for k, key in enumerate(keys):
        if key != keys[0]:
            raise ValueError(
                f"member {k}'s shape {key} differs from member 0's {keys[0]}: "
                "one population holds one shape"
            )
    models = []
    for p, generator in zip(params, generators, strict=True):
        model = build_model(family, input_size, output_size, p, device="cpu")
        model.reset_parameters(generator)
        models.append(model.to(device))
    make = BATCHED.get(family) if batched else None
    return (make or LoopMembers)(models)
