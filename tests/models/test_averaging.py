"""Weight averaging: the mean it keeps, the batch-norm statistics it re-estimates, resume."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from facerefl.models.averaging import WeightAverage, recompute_batch_norm


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 3, 1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x):
        return self.bn(self.conv(x))


def _trainer(step, max_steps=100, batches=()):
    loader = list(batches)
    return SimpleNamespace(global_step=step, max_steps=max_steps,
                           datamodule=SimpleNamespace(train_dataloader=lambda: loader))


def test_the_mean_of_the_sampled_weights_replaces_the_last_ones():
    torch.manual_seed(0)
    net = _Net()
    cb = WeightAverage(start=0.5, every=10, bn_batches=0)
    seen = []
    for step in range(0, 101):
        with torch.no_grad():
            net.conv.weight.normal_()
        cb.on_train_batch_end(_trainer(step), net, None, None, 0)
        if step >= 50 and step % 10 == 0:
            seen.append(net.conv.weight.detach().clone())
    assert cb.count == len(seen) == 6
    cb.on_train_end(_trainer(100), net)
    torch.testing.assert_close(net.conv.weight, torch.stack(seen).mean(0))


def test_batch_norm_statistics_are_those_of_the_data_under_the_averaged_weights():
    torch.manual_seed(0)
    net = _Net()
    batches = [SimpleNamespace(texture=torch.randn(8, 4, 5, 5) * 3 + 2) for _ in range(4)]
    used = recompute_batch_norm(net.eval(), batches, batches=3)
    assert used == 3 and not net.training
    with torch.no_grad():
        feats = [net.conv(b.texture) for b in batches[:3]]
    torch.testing.assert_close(net.bn.running_mean, torch.stack([f.mean((0, 2, 3)) for f in feats]).mean(0))
    assert net.bn.momentum == 0.1  # restored


def test_state_survives_a_checkpoint_round_trip():
    net = _Net()
    cb = WeightAverage(start=0, every=1)
    cb.on_train_batch_end(_trainer(3), net, None, None, 0)
    again = WeightAverage(start=0, every=1)
    again.load_state_dict(cb.state_dict())
    assert again.count == 1 and torch.equal(again.mean["conv.weight"], net.conv.weight)


def test_nothing_sampled_leaves_the_module_alone():
    net = _Net()
    before = net.conv.weight.detach().clone()
    cb = WeightAverage(start=200, every=10)
    cb.on_train_batch_end(_trainer(100), net, None, None, 0)
    cb.on_train_end(_trainer(100), net)
    assert cb.count == 0 and torch.equal(net.conv.weight, before)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        WeightAverage(every=0)
