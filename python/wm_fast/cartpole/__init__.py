"""World Models on CartPole-v1's state: M reads the 4-dim state (no V), C learns only in M's dream.

The "latent" z of a frame is the normalized state s / STATE_SCALE (envs/cartpole.py), so
episodes are stored as latent files (shards.py) with mu = z and logvar = -20 (z sampled
from them is the state to within 5e-5), and M is the library's MDNRNN on Z = 4, A = 2
(one-hot), run unchanged by the dream engine. Two kinds of M:

  mdn   the MDN-RNN: K = 5 Gaussians per dim, trained by NLL plus `mean_mse_weight` times the
        MSE of the mixture mean (without that term the mixture learns to hedge, e.g. models
        the action's effect as two modes instead of reading the action, and its samples jump);
        dreams sample at temperature tau.
  lstm  a deterministic LSTM: the same module with K = 1, its mean trained by MSE, and its
        log-sigma head rows set to a constant (sigma = `det_sigma`, tiny) after training,
        so its dreams are deterministic.

What makes the dream faithful (each ablated in results/cartpole.md):
  * iterative data: after the random round, each round collects episodes with the current C
    under action noise (random action with probability eps_i) and parameter noise (C's
    weights perturbed, so controllers drift both ways and the done head meets both walls);
  * the done head sees every episode's last step (`sequences.episode_windows`: random windows alone almost
    never reach it) with a balanced positive weight (negatives / positives);
  * for the MDN, the auxiliary MSE on the mixture mean;
  * a skip path (`skip_init`): LSTM units 0..3 hold a fixed copy of z_t that the head adds to
    every component's mean, so M learns the change z_{t+1} - z_t ("predict the delta") while
    staying a plain MDNRNN (3x lower one-step error on random data; not needed once the
    points above are in place);
  * dreams start from real initial states, run 500 steps, and CMA-ES candidates share
    common random numbers.

Pipeline (`run_cartpole`, `wm-fast cartpole`), in a run directory:

    round 0:            collect `random_episodes` random-policy episodes
    round r = 0..R:     train M on every episode so far (round r > 0 continues round r-1's M)
                        train C by CMA-ES in M's dream (round r > 0 starts at round r-1's C)
                        score C on `round_eval_episodes` real episodes (logged, never used)
                        r < R: collect `round_episodes` episodes with C + exploration
    final:              rnn.pt, controller.pt, summary.json (real and dream scores, steps, time)

Every step skips when its output exists and resumes when interrupted (CMA-ES state per
generation); `cartpole.json` holds the config and a rerun with another config is refused.
Real environment steps counted in `env_steps` are the collected episodes' (what M learns
from); the scoring episodes are reported separately and never feed back into training.
"""

from .agent import Agent, evaluate, evaluate_cli, load_agent, play, save_episode, score
from .config import (CONFIG_FILE, CONTROLLER_FILE, RNN_FILE, SUMMARY_FILE, TRAIN_SEED_LIMIT, CartPoleConfig,
                     get_config, tiny_config)
from .model import (add_mirrored, freeze_sigma, make_model, mixture_mean, model_diagnostics, model_losses, skip_init,
                    skip_masks, train_model)
from .pipeline import dream_score, run_cartpole, start_pool
from .results import RESULT_ROWS, reproduce_results, results_markdown

__all__ = [
    "CONFIG_FILE", "CONTROLLER_FILE", "RESULT_ROWS", "RNN_FILE", "SUMMARY_FILE", "TRAIN_SEED_LIMIT", "Agent",
    "CartPoleConfig", "add_mirrored", "dream_score", "evaluate", "evaluate_cli", "freeze_sigma", "get_config",
    "load_agent", "make_model", "mixture_mean", "model_diagnostics", "model_losses", "play", "reproduce_results",
    "results_markdown", "run_cartpole", "save_episode", "score", "skip_init", "skip_masks", "start_pool",
    "tiny_config", "train_model",
]
