"""AdamW: the library's fused training step (``gpt_embedding_adamw_step``) with the API of
``torch.optim.AdamW``.

    >>> from gpt_embedding import AdamW, GPTEmbedding
    >>> layer = GPTEmbedding(1000, 64, 128, dropout=0.0)
    >>> opt = AdamW(layer, lr=3e-4, weight_decay=0.1)
    >>> for ids, dy in batches:                          # doctest: +SKIP
    ...     opt.zero_grad()
    ...     layer(ids)
    ...     layer.backward(dy)
    ...     opt.step()

The optimizer state (both moments, each parameter's step count and, for a bfloat16 or
float16 table, the float32 master weights) lives in the layer, which owns the gradients and
knows which rows the batch touched. This module holds no maths: it builds the C options of
every parameter group and reads and writes the state through the library's zero-copy
pointers.
"""
from __future__ import annotations

import copy
import ctypes
import math
import numbers
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from . import _lib
from .errors import GPTEmbeddingError
from .layer import _PARAMS, GPTEmbedding

__all__ = ["AdamW"]

#: The hyperparameter keys of a parameter group, besides ``'params'``.
_HYPER = ("lr", "betas", "eps", "weight_decay", "lazy")
_STATE_KINDS = {"exp_avg": _lib.STATE_EXP_AVG, "exp_avg_sq": _lib.STATE_EXP_AVG_SQ, "master": _lib.STATE_MASTER}
_BAD_STATE = 7  # GPT_EMBEDDING_ERROR_BAD_STATE


def _real(name: str, value: Any) -> float:
    """A hyperparameter as a Python float; only its type is checked here (the library
    checks its range and reports the bad value)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"AdamW: {name} must be a real number, got {value!r}")
    return float(value)


def _betas(value: Any) -> Tuple[float, float]:
    try:
        b1, b2 = value
    except (TypeError, ValueError):
        raise TypeError(f"AdamW: betas must be a pair of numbers (beta1, beta2), got {value!r}") from None
    return _real("betas[0]", b1), _real("betas[1]", b2)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"AdamW: {name} must be True or False, got {value!r}")
    return bool(value)


class AdamW:
    """AdamW over the parameters of a :class:`~gpt_embedding.GPTEmbedding`, computed by the
    library (``gpt_embedding_adamw_step``): what ``torch.optim.AdamW`` computes, per
    element in float32, bit-identical for any thread count.

    Parameters
    ----------
    layer : GPTEmbedding
        The layer whose parameters are trained. The optimizer state lives in the layer.
    lr : float, default 1e-3
        Learning rate, finite and >= 0.
    betas : (float, float), default (0.9, 0.999)
        Decay rates of the first and second moments, each in [0, 1).
    eps : float, default 1e-8
        Added to the denominator, finite and > 0.
    weight_decay : float, default 0.01
        Decoupled weight decay (``p *= 1 - lr * weight_decay``), finite and >= 0. A group
        with ``weight_decay == 0`` is not decayed at all.
    lazy : bool, default False
        ``True``: update only the table rows backward touched since the last
        :meth:`zero_grad` (token table and learned position table; the layer norm is always
        dense); the other rows keep their values and moments, as ``torch.optim.SparseAdam``
        and LazyAdam do (weight decay applies to touched rows only).
    params : None or list of dict, default None
        ``None``: one group with every parameter of the layer (:meth:`GPTEmbedding.parameter_names`)
        but a frozen quantized table (:meth:`GPTEmbedding.frozen_parameter_names`).
        Otherwise a list of group dicts as for torch, each with ``'params'`` (a list of
        parameter names such as ``'token_embedding.weight'``) and optionally any of
        ``'lr'``, ``'betas'``, ``'eps'``, ``'weight_decay'``, ``'lazy'`` (missing keys take
        the values above), e.g. ``[{'params': ['token_embedding.weight',
        'position_embedding.weight'], 'weight_decay': 0.1}, {'params': ['layer_norm.weight',
        'layer_norm.bias'], 'weight_decay': 0.0}]``. A parameter may be in one group only.

    Attributes
    ----------
    layer : GPTEmbedding
        The layer this optimizer steps.
    param_groups : list of dict
        The groups, torch-style: change ``opt.param_groups[i]['lr']`` (a scheduler) and the
        next :meth:`step` uses it.
    defaults : dict
        The constructor's hyperparameters.

    Raises
    ------
    KeyError
        A name in ``params`` is not a parameter of the layer.
    ValueError
        A parameter in two groups, an empty group, an unknown key in a group; or a
        hyperparameter out of range (:class:`~gpt_embedding.GPTEmbeddingValueError` with the
        library's message naming it).
    TypeError
        A hyperparameter of the wrong type.

    Notes
    -----
    The state (``exp_avg``, ``exp_avg_sq``, the step count ``t`` of each parameter and the
    master weights of a 16-bit table) belongs to the layer, not to this object: two
    optimizers over the same parameters of one layer share it. A parameter without a
    gradient (the layer norm when no forward normalised) is skipped, as torch skips a
    parameter whose ``grad`` is ``None``.
    """

    def __init__(self, layer: GPTEmbedding, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01, lazy: bool = False,
                 params: Optional[Sequence[Dict[str, Any]]] = None) -> None:
        if not isinstance(layer, GPTEmbedding):
            raise TypeError(f"AdamW: layer must be a GPTEmbedding, got {type(layer).__name__}")
        self.layer = layer
        self.defaults: Dict[str, Any] = {"lr": lr, "betas": tuple(betas) if isinstance(betas, (list, tuple)) else betas,
                                         "eps": eps, "weight_decay": weight_decay, "lazy": lazy}
        if params is None:
            frozen = layer.frozen_parameter_names()
            groups = [{"params": [n for n in layer.parameter_names() if n not in frozen]}]
        else:
            if isinstance(params, dict) or not isinstance(params, (list, tuple)):
                raise TypeError("AdamW: params must be None or a list of parameter-group dicts")
            groups = list(params)
        self.param_groups: List[Dict[str, Any]] = []
        for group in groups:
            if not isinstance(group, dict):
                raise TypeError(f"AdamW: a parameter group must be a dict, got {type(group).__name__}")
            full = {"params": group.get("params")}
            for key in _HYPER:
                full[key] = group.get(key, self.defaults[key])
            unknown = [k for k in group if k != "params" and k not in _HYPER]
            if unknown:
                raise ValueError(f"AdamW: unknown key(s) {unknown} in a parameter group; "
                                 f"expected 'params', {', '.join(repr(k) for k in _HYPER)}")
            if isinstance(full["params"], str) or not isinstance(full["params"], Iterable):
                raise TypeError("AdamW: a group's 'params' must be a list of parameter names")
            full["params"] = list(full["params"])
            if isinstance(full["betas"], list):
                full["betas"] = tuple(full["betas"])
            self.param_groups.append(full)
        self._clip_scale = 1.0
        # Everything checked now, as torch does, with the library's messages.
        self._check_groups(self.param_groups)

    # -- the step ----------------------------------------------------------------------

    def _mask(self, names: Sequence[str], where: str) -> int:
        valid = self.layer.parameter_names()
        mask = 0
        for name in names:
            if not isinstance(name, str):
                raise TypeError(f"AdamW: {where}: parameter names must be strings, got {name!r}")
            if name not in valid:
                raise KeyError(f"AdamW: {where}: {name!r} is not a parameter of this layer; it has "
                               f"{', '.join(valid)}")
            bit = 1 << _PARAMS[name]
            if mask & bit:
                raise ValueError(f"AdamW: {where}: {name!r} is listed twice")
            mask |= bit
        return mask

    def _options(self, groups: Sequence[Dict[str, Any]], grad_scale: float) -> List[_lib.AdamWOptions]:
        """The C options of every group, type-checked (the library checks the values)."""
        options = []
        seen = 0
        for i, group in enumerate(groups):
            where = f"param_groups[{i}]"
            if not isinstance(group, dict) or "params" not in group:
                raise TypeError(f"AdamW: {where} must be a dict with a 'params' list")
            names = group["params"]
            if isinstance(names, str) or not isinstance(names, (list, tuple)):
                raise TypeError(f"AdamW: {where}['params'] must be a list of parameter names")
            if not names:
                raise ValueError(f"AdamW: {where} has no parameter")
            mask = self._mask(names, where)
            if mask & seen:
                raise ValueError(f"AdamW: {where}: a parameter is in more than one group")
            seen |= mask
            for key in _HYPER:
                if key not in group:
                    raise KeyError(f"AdamW: {where} has no {key!r}")
            o = _lib.default_adamw_options()
            o.params = mask
            o.lr = _real(f"{where}['lr']", group["lr"])
            o.beta1, o.beta2 = _betas(group["betas"])
            o.eps = _real(f"{where}['eps']", group["eps"])
            o.weight_decay = _real(f"{where}['weight_decay']", group["weight_decay"])
            o.decay_params = mask if o.weight_decay > 0 else 0
            o.grad_scale = grad_scale
            o.lazy = 1 if _flag(f"{where}['lazy']", group["lazy"]) else 0
            options.append(o)
        return options

    def _dry_run(self, options: Sequence[_lib.AdamWOptions], need_gradient: bool) -> None:
        """Has the library check every group's options without changing anything: a step
        over no parameter (``params = 0``) validates the values and that a gradient is
        pending, and updates nothing. The caller holds the layer's write lock."""
        handle = self.layer._handle.get()
        for o in options:
            probe = _lib.AdamWOptions()
            ctypes.memmove(ctypes.byref(probe), ctypes.byref(o), ctypes.sizeof(o))
            probe.params = 0
            probe.decay_params = 0
            try:
                _lib.call(_lib.lib.gpt_embedding_adamw_step, handle, ctypes.byref(probe))
            except GPTEmbeddingError as e:
                if need_gradient or e.status != _BAD_STATE:
                    raise

    def _check_groups(self, groups: Sequence[Dict[str, Any]]) -> None:
        options = self._options(groups, 1.0)
        self.layer._access.write(self._dry_run, options, False)

    def step(self, grad_scale: float = 1.0) -> None:
        """One AdamW step of every parameter group (``gpt_embedding_adamw_step`` once per
        group, with the group's parameters as ``params`` and, when its ``weight_decay`` is
        positive, as ``decay_params``).

        Parameters
        ----------
        grad_scale : float, default 1.0
            Multiplies the gradients inside the step (the gradients themselves are not
            changed), finite and >= 0; multiplied by the scale :meth:`clip_grad_norm` set,
            which this step then consumes.

        Raises
        ------
        GPTEmbeddingValueError
            A hyperparameter or ``grad_scale`` out of range (negative, NaN, infinite,
            ``betas`` outside [0, 1)); the library's message names it.
        GPTEmbeddingStateError
            No backward since the last :meth:`zero_grad` (or ever).
        KeyError, ValueError, TypeError
            A group was changed into something invalid (unknown name, wrong type).

        Every group is checked before any is stepped: after an error no parameter and no
        state has changed.
        """
        scale = _real("grad_scale", grad_scale) * self._clip_scale
        options = self._options(self.param_groups, scale)

        def run() -> None:
            self._dry_run(options, True)
            handle = self.layer._handle.get()
            for o in options:
                _lib.call(_lib.lib.gpt_embedding_adamw_step, handle, ctypes.byref(o))
        self.layer._access.write(run)
        self._clip_scale = 1.0

    def zero_grad(self) -> None:
        """Zeroes the layer's gradients (:meth:`GPTEmbedding.zero_grad`; only the rows
        backward touched are cleared) and forgets a pending :meth:`clip_grad_norm` scale."""
        self.layer.zero_grad()
        self._clip_scale = 1.0

    # -- gradient norm -------------------------------------------------------------------

    def grad_norm_squared(self) -> float:
        """The squared L2 norm of all the layer's gradients, in double
        (``gpt_embedding_grad_norm_squared``; over the touched rows only, so it costs what
        the batch costs). Add other layers' squared norms to clip by a global norm. 0
        before any backward; infinite or NaN when a gradient is."""
        out = ctypes.c_double()
        self.layer._access.read(_lib.call, _lib.lib.gpt_embedding_grad_norm_squared, self.layer._handle.get(),
                                ctypes.byref(out))
        return out.value

    def grad_norm(self) -> float:
        """The L2 norm of all the layer's gradients: ``sqrt(grad_norm_squared())``."""
        return math.sqrt(self.grad_norm_squared())

    def clip_grad_norm(self, max_norm: float) -> float:
        """Clips by the global norm of the layer's gradients, as
        ``torch.nn.utils.clip_grad_norm_`` does, without touching the gradients: the next
        :meth:`step` multiplies them by ``min(1, max_norm / (norm + 1e-6))``.

        Parameters
        ----------
        max_norm : float
            Finite and >= 0.

        Returns
        -------
        float
            The norm before clipping (check ``math.isfinite`` to skip a step whose gradients
            overflowed: the scale is then 0 or NaN, and a NaN scale makes :meth:`step` raise).
        """
        limit = _real("max_norm", max_norm)
        if not (math.isfinite(limit) and limit >= 0):
            raise ValueError(f"AdamW: max_norm {limit} must be finite and >= 0")
        norm = self.grad_norm()
        self._clip_scale = min(1.0, limit / (norm + 1e-6))
        return norm

    # -- state -----------------------------------------------------------------------------

    def _names(self) -> List[str]:
        """Every parameter name of every group, in group order."""
        return [name for group in self.param_groups for name in group["params"]]

    def _get_step(self, name: str) -> int:
        """The caller holds the layer's lock."""
        step = ctypes.c_int64()
        _lib.call(_lib.lib.gpt_embedding_optimizer_get_step, self.layer._handle.get(), _PARAMS[name],
                  ctypes.byref(step))
        return step.value

    def _state_array(self, name: str, kind: str, shape: Tuple[int, ...]) -> np.ndarray:
        """A numpy view of one state tensor (allocating the parameter's state if needed),
        valid only while the caller holds the layer's write lock: never handed out.
        ``shape`` is the parameter's (read before taking the lock, which is not
        re-entrant)."""
        data, n = _lib.c_float_p(), ctypes.c_int64()
        _lib.call(_lib.lib.gpt_embedding_optimizer_state_data, self.layer._handle.get(), _PARAMS[name],
                  _STATE_KINDS[kind], ctypes.byref(data), ctypes.byref(n))
        if n.value != int(np.prod(shape)):
            raise GPTEmbeddingError(f"{name} {kind}: the library reports {n.value} floats for shape {list(shape)}", 0)
        return np.ctypeslib.as_array(data, shape=shape)

    def _has_master(self, name: str) -> bool:
        return self.layer._dtype_code(name) != _lib.DTYPE_F32

    def state_dict(self) -> Dict[str, Any]:
        """The optimizer state and hyperparameters, torch-style, as **copies**.

        Returns
        -------
        dict
            ``{'state': {name: {'step': int, 'exp_avg': ndarray, 'exp_avg_sq': ndarray,
            'master': ndarray}}, 'param_groups': [group dicts]}``: the state of every
            parameter of this optimizer whose step count is > 0 (float32 arrays with the
            parameter's shape; ``'master'``, the float32 master weights, for bfloat16 and
            float16 tables only), and copies of :attr:`param_groups`.

        Notes
        -----
        The position of the layer's dropout stream is not part of it (no library call
        exposes it): with dropout on, a run resumed from state dicts draws other masks.
        ``layer.save_safetensors(path, optimizer=True)`` saves that position too, so
        ``load_safetensors`` on a layer of the same configuration resumes bit for bit.
        """
        names = self._names()
        shapes = {name: self.layer._shape(name) for name in names}
        masters = {name: self._has_master(name) for name in names}

        def read() -> Dict[str, Dict[str, Any]]:
            state: Dict[str, Dict[str, Any]] = {}
            for name in names:
                step = self._get_step(name)
                if step <= 0:
                    continue
                entry: Dict[str, Any] = {"step": step}
                for kind in ("exp_avg", "exp_avg_sq") + (("master",) if masters[name] else ()):
                    entry[kind] = self._state_array(name, kind, shapes[name]).copy()
                state[name] = entry
            return state
        return {"state": self.layer._access.write(read), "param_groups": copy.deepcopy(self.param_groups)}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Restores what :meth:`state_dict` returned (of this optimizer or of one over a
        copy of the layer): the state through the library's zero-copy pointers and
        ``gpt_embedding_optimizer_set_step``, and the groups' hyperparameters.

        Everything is checked before anything is written: the groups must list the same
        parameters as this optimizer's (group by group) with valid hyperparameters, every
        state entry must name a parameter of this optimizer and hold ``'step'`` (an int >=
        0), ``'exp_avg'`` and ``'exp_avg_sq'`` (float32 arrays of the parameter's shape)
        and, for a 16-bit table only, optionally ``'master'`` (float32; taken from the table
        when absent). A parameter of this optimizer absent from ``'state'`` starts afresh
        (zero moments, step 0, master weights from the table), as with torch.

        Raises
        ------
        KeyError
            An unknown parameter name or a missing key.
        ValueError
            A wrong shape, dtype, step or group layout, or a hyperparameter out of range
            (:class:`~gpt_embedding.GPTEmbeddingValueError` with the library's message).
        TypeError
            A value of the wrong type.
        """
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise KeyError("AdamW.load_state_dict: expected a dict with exactly the keys 'state' and 'param_groups'")
        groups = state_dict["param_groups"]
        state = state_dict["state"]
        if not isinstance(groups, (list, tuple)) or len(groups) != len(self.param_groups):
            raise ValueError(f"AdamW.load_state_dict: {len(self.param_groups)} parameter group(s) expected, got "
                             f"{len(groups) if isinstance(groups, (list, tuple)) else type(groups).__name__}")
        new_groups = []
        for i, (ours, theirs) in enumerate(zip(self.param_groups, groups)):
            if not isinstance(theirs, dict):
                raise TypeError(f"AdamW.load_state_dict: param_groups[{i}] must be a dict")
            if list(theirs.get("params", ())) != list(ours["params"]):
                raise ValueError(f"AdamW.load_state_dict: param_groups[{i}] has params {theirs.get('params')}, "
                                 f"this optimizer's has {ours['params']}")
            unknown = [k for k in theirs if k != "params" and k not in _HYPER]
            if unknown:
                raise ValueError(f"AdamW.load_state_dict: unknown key(s) {unknown} in param_groups[{i}]")
            group = {"params": list(ours["params"])}
            for key in _HYPER:
                if key not in theirs:
                    raise KeyError(f"AdamW.load_state_dict: param_groups[{i}] has no {key!r}")
                group[key] = tuple(theirs[key]) if key == "betas" and isinstance(theirs[key], list) else theirs[key]
            new_groups.append(group)
        options = self._options(new_groups, 1.0)  # types and names

        if not isinstance(state, dict):
            raise TypeError("AdamW.load_state_dict: 'state' must be a dict {parameter name: state}")
        mine = self._names()
        arrays: Dict[str, Dict[str, Any]] = {}
        for name, entry in state.items():
            if name not in mine:
                raise KeyError(f"AdamW.load_state_dict: {name!r} is not a parameter of this optimizer; it has "
                               f"{', '.join(mine)}")
            if not isinstance(entry, dict):
                raise TypeError(f"AdamW.load_state_dict: state[{name!r}] must be a dict")
            master = self._has_master(name)
            allowed = {"step", "exp_avg", "exp_avg_sq"} | ({"master"} if master else set())
            extra = set(entry) - allowed
            if extra:
                raise ValueError(f"AdamW.load_state_dict: state[{name!r}] has unexpected key(s) {sorted(extra)}"
                                 + ("" if master else f" ({name} is float32: it has no master weights)"))
            for key in ("step", "exp_avg", "exp_avg_sq"):
                if key not in entry:
                    raise KeyError(f"AdamW.load_state_dict: state[{name!r}] has no {key!r}")
            step = entry["step"]
            if isinstance(step, (bool, np.bool_)) or not isinstance(step, (numbers.Integral, np.integer)):
                raise TypeError(f"AdamW.load_state_dict: state[{name!r}]['step'] must be an int, got {step!r}")
            if not 0 <= int(step) < (1 << 63):
                raise ValueError(f"AdamW.load_state_dict: state[{name!r}]['step'] = {int(step)} must be >= 0")
            shape = self.layer._shape(name)
            checked: Dict[str, Any] = {"step": int(step)}
            for key in sorted(set(entry) - {"step"}):
                value = entry[key]
                if not isinstance(value, np.ndarray):
                    raise TypeError(f"AdamW.load_state_dict: state[{name!r}][{key!r}] must be a numpy array, "
                                    f"got {type(value).__name__}")
                if value.dtype != np.float32:
                    raise ValueError(f"AdamW.load_state_dict: state[{name!r}][{key!r}] must be float32, "
                                     f"got {value.dtype}")
                if value.shape != shape:
                    raise ValueError(f"AdamW.load_state_dict: state[{name!r}][{key!r}] has shape "
                                     f"{list(value.shape)}, {name} has {list(shape)}")
                checked[key] = value
            arrays[name] = checked
        masters = {name: self._has_master(name) for name in mine}
        shapes = {name: self.layer._shape(name) for name in mine}
        tables = {name: self.layer._copy(name, _lib.lib.gpt_embedding_get_parameter)
                  for name in mine if masters[name]}

        def write() -> None:
            self._dry_run(options, False)  # the hyperparameters' values, with the library's messages
            handle = self.layer._handle.get()
            for name in mine:
                entry = arrays.get(name)
                if entry is None and self._get_step(name) == 0:
                    continue  # no state, or a fresh one: nothing to forget
                for kind in ("exp_avg", "exp_avg_sq") + (("master",) if masters[name] else ()):
                    target = self._state_array(name, kind, shapes[name])
                    if entry is not None and kind in entry:
                        target[...] = entry[kind]
                    elif kind == "master":
                        target[...] = tables[name]
                    else:
                        target[...] = 0
                _lib.call(_lib.lib.gpt_embedding_optimizer_set_step, handle, _PARAMS[name],
                          entry["step"] if entry is not None else 0)
        self.layer._access.write(write)
        self.param_groups = new_groups

    def reset_state(self) -> None:
        """Frees the optimizer state of **every** parameter of the layer
        (``gpt_embedding_optimizer_reset``): the next step starts from step 1 with zero
        moments (and master weights taken from the tables)."""
        self.layer._access.write(_lib.call, _lib.lib.gpt_embedding_optimizer_reset, self.layer._handle.get())

    def __repr__(self) -> str:
        lines = [f"AdamW ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in ("params",) + _HYPER:
                lines.append(f"    {key}: {g.get(key)!r}")
        lines.append(")")
        return "\n".join(lines)
