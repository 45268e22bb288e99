"""Adam for the per-photo fit, without ``torch.optim``.

The update is Kingma & Ba's (the paper's optimizer, section 8.1), written out as
``torch.optim.Adam`` computes it with its defaults (no weight decay, no AMSGrad,
``eps = 1e-8``), so a fit gives the same iterates to float rounding. It exists because
constructing the first ``torch.optim`` optimizer in a process imports ``torch._dynamo``,
which takes 1.5–3 s on the 2-core CPU: longer than the whole latent phase's decoder-only
steps. The fit only ever needs this one update on a handful of tensors (``docs/speed.md``).
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor


def adam_update(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, step: int, lr: float,
                betas: tuple[float, float], eps: float = 1e-8) -> None:
    """One Adam step on ``param`` in place; ``m`` and ``v`` (moments, same shape) in place.

    ``step`` counts from 1 (bias correction ``1 - beta**step``).
    """
    b1, b2 = betas
    m.lerp_(grad, 1 - b1)
    v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
    denom = (v.sqrt() / (1 - b2 ** step) ** 0.5).add_(eps)
    param.addcdiv_(m, denom, value=-lr / (1 - b1 ** step))


class Adam:
    """The part of ``torch.optim.Adam``'s interface the fit uses: ``param_groups`` (each a
    dict with ``params`` and ``lr``), ``zero_grad`` and ``step``.

    Args:
        params: tensors, or dicts ``{"params": [...], "lr": ...}`` as for torch optimizers.
        lr: step size of groups that name none.
        betas: moment decay rates.
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        params = list(params)
        if params and not isinstance(params[0], dict):
            params = [{"params": params}]
        self.param_groups = [{**g, "params": list(g["params"]), "lr": g.get("lr", lr)} for g in params]
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = eps
        self.state: dict[int, list] = {}  # id(param) -> [steps, m, v]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:  # as torch: a parameter's step count advances with its grads
                    continue
                st = self.state.setdefault(id(p), [0, torch.zeros_like(p), torch.zeros_like(p)])
                st[0] += 1
                adam_update(p, p.grad, st[1], st[2], st[0], g["lr"], self.betas, self.eps)
