"""What changes from epoch to epoch of the game: the noise temperature and the invariance weight."""

from __future__ import annotations

from invrat.config import InvRatConfig


def temperature(config: InvRatConfig, epoch: int) -> float:
    """The generator's noise temperature: exponential decay per epoch, floored."""
    return max(config.game.min_temperature, config.game.temperature * config.game.temperature_decay**epoch)


def diff_weight(lambda_diff: float, game_epoch: int, ramp_epochs: int) -> float:
    """lambda_diff for a game epoch (0-based): linear ramp over ``ramp_epochs``, then constant."""
    if ramp_epochs <= 0:
        return lambda_diff
    return lambda_diff * min(1.0, max(0, game_epoch + 1) / (ramp_epochs + 1))
