"""Acting in real environments: random policies, the batched agent, the one episode loop and the worker pool."""

from .episodes import Actor, EpisodeRequest, RandomActor, run_episodes
from .policies import POLICY_NAMES, make_policy, policy_rng

__all__ = ["POLICY_NAMES", "Actor", "EpisodeRequest", "RandomActor", "make_policy", "policy_rng", "run_episodes"]
