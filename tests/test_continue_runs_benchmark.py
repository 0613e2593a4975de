"""``benchmarks/continue_runs.py``: learning rates put back to their configured values and held there."""
import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import pytest  # noqa: E402
import torch  # noqa: E402
from continue_runs import hold_learning_rates, mean_state, spread  # noqa: E402


def test_held_learning_rates_are_the_configured_ones_and_an_sgd_step_uses_them():
    weight, friction = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.zeros(1))
    adam = torch.optim.Adam([{"params": [weight], "lr": 1e-3}])
    sgd = torch.optim.SGD([friction], lr=0.15)
    decay = lambda step: max(1.0 - step / 10, 0.02)  # noqa: E731
    trainer = SimpleNamespace(generator_optimizer=adam, friction_optimizer=sgd,
                              scheduler=torch.optim.lr_scheduler.LambdaLR(adam, decay),
                              friction_scheduler=torch.optim.lr_scheduler.LambdaLR(sgd, decay))
    for _ in range(12):  # past the end of the decay
        adam.step()
        sgd.step()
        trainer.scheduler.step()
        trainer.friction_scheduler.step()
    assert sgd.param_groups[0]["lr"] == pytest.approx(0.15 * 0.02)
    hold_learning_rates(trainer)
    for _ in range(3):
        trainer.scheduler.step()
        trainer.friction_scheduler.step()
    assert adam.param_groups[0]["lr"] == 1e-3 and sgd.param_groups[0]["lr"] == 0.15
    friction.grad = torch.tensor([2.0])
    sgd.step()
    assert float(friction.detach()) == pytest.approx(-0.15 * 2.0, rel=1e-6)


def test_spread_is_largest_over_smallest_minus_one():
    assert spread([4.0, 5.0, 2.0]) == pytest.approx(1.5)
    assert spread([3.0, 3.0]) == 0.0


def test_mean_state_averages_floating_entries_and_keeps_the_last_of_the_others():
    states = [{"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}, {"w": torch.tensor([3.0, 6.0]),
                                                                     "n": torch.tensor(4)}]
    mean = mean_state(states)
    assert torch.equal(mean["w"], torch.tensor([2.0, 4.0])) and int(mean["n"]) == 4
