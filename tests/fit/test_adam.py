"""The fit's Adam against torch.optim.Adam, and that a fit never imports torch._dynamo."""

import subprocess
import sys

import torch

from facerefl.fit.adam import Adam


def _run(opt_cls, steps: int = 25):
    torch.manual_seed(0)
    a = torch.randn(7, requires_grad=True)
    b = torch.randn(2, 3, requires_grad=True)
    target = torch.randn(7)
    opt = opt_cls([{"params": [a], "lr": 0.1}, {"params": [b], "lr": 0.03}], betas=(0.9, 0.999))
    for i in range(steps):
        loss = (a - target).pow(2).sum() + (b ** 3).sum()
        if i % 5 == 4:  # a step where only `a` has a gradient: per-parameter step counts
            loss = (a - target).pow(2).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if i == 10:
            opt.param_groups[0]["lr"] = 0.05
        opt.step()
    return a.detach(), b.detach()


def test_matches_torch_adam():
    ours = _run(Adam)
    ref = _run(torch.optim.Adam)
    for x, y in zip(ours, ref):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-6)
        assert not torch.equal(x, torch.zeros_like(x))


def test_fit_module_does_not_import_dynamo():
    code = ("import sys, torch; from facerefl.fit.adam import Adam; "
            "p = torch.zeros(3, requires_grad=True); o = Adam([p], lr=0.1); "
            "p.sum().backward(); o.step(); print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
