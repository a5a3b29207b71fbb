"""``gpt_embedding.nn.AdamW``: the library's fused AdamW step as a ``torch.optim.Optimizer``.

The parameters it is given must be parameters of ``gpt_embedding.nn`` modules. Their
gradients then stay in the library (backward adds into the library's own buffers and
records the rows it touched, instead of materialising a dense [vocab, D] ``.grad``), and
``step()`` updates the tables in place inside the library, lazily (touched rows only) when
``lazy=True``. Hyperparameters live in ``param_groups`` as for any torch optimizer, so lr
schedulers work; the optimizer state (moments, step counts, master weights of 16-bit
tables) lives in the library and ``state_dict()`` / ``load_state_dict()`` carry it as
tensors.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from ..optim import AdamW as _LayerAdamW
from .module import LibraryModule, owner_of

__all__ = ["AdamW"]


class AdamW(torch.optim.Optimizer):
    """AdamW (``torch.optim.AdamW``'s arithmetic, per element in float32, in one fused,
    multi-threaded pass per tensor) over parameters of ``gpt_embedding.nn`` modules.

    ``AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, lazy=False,
    modules=None)``: ``params`` is an iterable of parameters or of parameter-group dicts, as
    for every torch optimizer. ``lazy=True`` updates only the table rows backward touched
    since the last ``zero_grad`` (the layer norm stays dense), as ``SparseAdam`` does.

    Gradients of these parameters stay in the library: ``.grad`` is not set (no dense
    [vocab, D] tensor per step); :meth:`grad_norm` and :meth:`clip_grad_norm` read them.
    A parameter of any other module raises ``ValueError``: step it with a torch optimizer.
    Not usable under ``torch.compile`` (gradients kept in the library cannot be traced).
    """

    def __init__(self, params: Any, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, lazy: bool = False) -> None:
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, lazy=lazy)
        super().__init__(params, defaults)
        self._owners: Dict[int, Tuple[LibraryModule, str]] = {}
        for gi, group in enumerate(self.param_groups):
            for pi, p in enumerate(group["params"]):
                owner = owner_of(p)
                if owner is None:
                    raise ValueError(
                        f"AdamW: param_groups[{gi}]['params'][{pi}] (shape {list(p.shape)}, {p.dtype}) is not a parameter "
                        "of a gpt_embedding.nn module: this optimizer steps the library's own tables. Give it to a "
                        "torch optimizer (torch.optim.AdamW) instead, e.g. one optimizer per kind of parameter")
                self._owners[id(p)] = owner
        self._modules: List[LibraryModule] = []
        for m, name in self._owners.values():
            if all(m is not k for k in self._modules):
                self._modules.append(m)
            m._binding.into_layer.add(name)
            p = m.get_parameter(m._PATHS[name])
            p.grad = None
        self._clip_scale = 1.0
        self._inner: Dict[int, _LayerAdamW] = {}
        self._build_inner()

    # -- the library's optimizers, one per layer ------------------------------------------

    def _groups_of(self, module: LibraryModule) -> List[Dict[str, Any]]:
        groups = []
        for group in self.param_groups:
            names = [self._owners[id(p)][1] for p in group["params"] if self._owners[id(p)][0] is module]
            if names:
                groups.append({"params": names, "lr": float(group["lr"]), "betas": tuple(group["betas"]),
                               "eps": float(group["eps"]), "weight_decay": float(group["weight_decay"]),
                               "lazy": bool(group["lazy"])})
        return groups

    def _build_inner(self) -> None:
        self._inner = {id(m): _LayerAdamW(m.layer, params=self._groups_of(m)) for m in self._modules}

    def _sync(self) -> None:
        """Copies the torch groups' current hyperparameters (a scheduler may have changed
        them) into the library's groups."""
        for m in self._modules:
            inner = self._inner[id(m)]
            groups = self._groups_of(m)
            if [g["params"] for g in groups] != [g["params"] for g in inner.param_groups]:
                self._build_inner()
                return
            inner.param_groups = groups

    def add_param_group(self, param_group: Dict[str, Any]) -> None:
        super().add_param_group(param_group)
        if not hasattr(self, "_owners"):
            return  # during __init__, which resolves every group afterwards
        group = self.param_groups[-1]
        owners = [owner_of(p) for p in group["params"]]
        if any(o is None for o in owners):
            self.param_groups.pop()
            raise ValueError("AdamW.add_param_group: a parameter is not a parameter of a gpt_embedding.nn module; "
                             "give it to a torch optimizer")
        for p, (m, name) in zip(group["params"], owners):
            self._owners[id(p)] = (m, name)
            m._binding.into_layer.add(name)
            if all(m is not k for k in self._modules):
                self._modules.append(m)
        self._build_inner()

    # -- the optimizer API ------------------------------------------------------------------

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], Any]] = None) -> Any:
        """One AdamW step of every group (the library's ``gpt_embedding_adamw_step``).
        Every group of every layer is checked before any is stepped."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._sync()
        for m in self._modules:
            self._inner[id(m)].step(grad_scale=self._clip_scale)
        self._clip_scale = 1.0
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zeroes the gradients the library keeps for these parameters (only the rows
        backward touched are cleared)."""
        for m in self._modules:
            m.layer.zero_grad()
        self._clip_scale = 1.0

    def grad_norm(self) -> float:
        """The L2 norm of all the gradients of the layers this optimizer steps."""
        return math.sqrt(sum(self._inner[id(m)].grad_norm_squared() for m in self._modules))

    def clip_grad_norm(self, max_norm: float) -> float:
        """``torch.nn.utils.clip_grad_norm_`` for gradients kept in the library: the next
        :meth:`step` multiplies them by ``min(1, max_norm / (norm + 1e-6))`` (they are not
        changed). Returns the norm before clipping."""
        norm = self.grad_norm()
        self._clip_scale = min(1.0, float(max_norm) / (norm + 1e-6))
        return norm

    def state_dict(self) -> Dict[str, Any]:
        """torch's layout: ``{'state': {index: {'step': tensor, 'exp_avg': tensor,
        'exp_avg_sq': tensor[, 'master': tensor]}}, 'param_groups': [...]}``, parameters
        numbered in group order; copies of the library's state (float32 tensors)."""
        self._sync()
        out = super().state_dict()
        index = 0
        states: Dict[int, Dict[str, Any]] = {}
        library = {id(m): self._inner[id(m)].state_dict()["state"] for m in self._modules}
        for group in self.param_groups:
            for p in group["params"]:
                m, name = self._owners[id(p)]
                entry = library[id(m)].get(name)
                if entry is not None:
                    states[index] = {k: (torch.tensor(float(v)) if k == "step" else torch.from_numpy(v))
                                     for k, v in entry.items()}
                index += 1
        out["state"] = states
        return out

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Restores what :meth:`state_dict` returned: hyperparameters into ``param_groups``,
        moments, step counts and master weights into the library (checked first)."""
        groups = state_dict.get("param_groups")
        if not isinstance(groups, list) or len(groups) != len(self.param_groups) or any(
                len(g["params"]) != len(o["params"]) for g, o in zip(groups, self.param_groups)):
            raise ValueError("AdamW.load_state_dict: the parameter groups do not match this optimizer's "
                             "(same number of groups with the same number of parameters expected)")
        params = [p for g in self.param_groups for p in g["params"]]
        per_module: Dict[int, Dict[str, Dict[str, Any]]] = {id(m): {} for m in self._modules}
        for key, entry in state_dict.get("state", {}).items():
            if not isinstance(key, int) or not 0 <= key < len(params):
                raise KeyError(f"AdamW.load_state_dict: state index {key!r} is not a parameter of this optimizer")
            m, name = self._owners[id(params[key])]
            converted: Dict[str, Any] = {}
            for k, v in entry.items():
                if k == "step":
                    converted[k] = int(v.item() if isinstance(v, Tensor) else v)
                else:
                    converted[k] = v.detach().cpu().numpy() if isinstance(v, Tensor) else np.asarray(v)
            per_module[id(m)][name] = converted
        new_groups = []
        for theirs, ours in zip(groups, self.param_groups):
            g = dict(theirs)
            g["params"] = ours["params"]
            new_groups.append(g)
        saved = self.param_groups
        self.param_groups = new_groups
        try:
            self._sync()
            for m in self._modules:
                inner = self._inner[id(m)]
                inner.load_state_dict({"state": per_module[id(m)], "param_groups": self._groups_of(m)})
        except Exception:
            self.param_groups = saved
            raise

