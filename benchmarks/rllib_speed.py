r"""Training speed against RLlib, on the same Overcooked layout and machine.

One run of this script measures, one after the other:
  ours   IMPALA through the ``local`` program: 2 actor processes x 16 env
         copies, MLP 128-128 policy/value net, batch 32 x T=20 (the default
         config; the evaluator off). Env steps/s over ``--secs`` seconds after
         warm-up, counted by the program's counter.
  rllib  RLlib (ray[rllib] 2.60, new API stack) PPO with 2 env runners, the
         same Overcooked env (our wrapper, featurized 96-d observations, the
         same shaped reward) behind RLlib's ``MultiAgentEnv``, one policy shared
         by both agents, MLP 128-128; PPO's defaults otherwise
         (``--rllib_epochs`` and ``--rllib_batch`` override epochs and train
         batch). Env steps/s = growth of ``num_env_steps_sampled_lifetime``
         over ``--secs`` seconds after the first training iteration.

RLlib lives in its own virtualenv (it pins gymnasium 1.2 and needs torch):
  python3 -m venv /tmp/venv-rllib
  /tmp/venv-rllib/bin/pip install torch==2.13.0 "ray[rllib]==2.60.0" \
      overcooked-ai==1.1.0 numpy==2.4.6
  python benchmarks/rllib_speed.py --rllib_python=/tmp/venv-rllib/bin/python
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

_SIDE = flags.DEFINE_enum('side', 'both', ['both', 'ours', 'rllib'],
                          'Which side to run (rllib runs in --rllib_python).')
_RLLIB_PYTHON = flags.DEFINE_string('rllib_python', None,
                                    'Python of a virtualenv with ray[rllib].')
_LAYOUT = flags.DEFINE_string('layout', 'cramped_room', 'Overcooked layout.')
_SECS = flags.DEFINE_float('secs', 60., 'Seconds measured per side.')
_REPEATS = flags.DEFINE_integer('repeats', 1, 'Runs per side (median).')
_RLLIB_EPOCHS = flags.DEFINE_integer('rllib_epochs', None, 'PPO epochs.')
_RLLIB_BATCH = flags.DEFINE_integer('rllib_batch', None, 'PPO train batch.')


def rllib_steps_per_second(secs: float) -> dict:
  """Runs inside the RLlib virtualenv (no JAX there)."""
  import gymnasium as gym
  import numpy as np
  import ray
  from ray.rllib.algorithms.ppo import PPOConfig
  from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
  from ray.rllib.env.multi_agent_env import MultiAgentEnv
  from marl_jax.envs import overcooked

  layout = _LAYOUT.value

  class OvercookedMultiAgent(MultiAgentEnv):
    """Our Overcooked env (featurized) as an RLlib multi-agent env."""

    def __init__(self, config=None):
      super().__init__()
      del config
      self._env = overcooked.make(layout, horizon=400,
                                  observation='featurized')
      spec = self._env.spec()
      self.agents = self.possible_agents = ['agent_0', 'agent_1']
      shape = spec.observation['FEATURES'].shape
      space = gym.spaces.Box(-np.inf, np.inf, shape=shape, dtype=np.float32)
      self.observation_spaces = {a: space for a in self.agents}
      self.action_spaces = {a: gym.spaces.Discrete(spec.num_actions)
                            for a in self.agents}

    def _obs(self, ts):
      f = np.asarray(ts.observation['FEATURES'], np.float32)
      return {a: f[i] for i, a in enumerate(self.agents)}

    def reset(self, *, seed=None, options=None):
      del seed, options
      return self._obs(self._env.reset()), {}

    def step(self, action_dict):
      actions = np.array([action_dict[a] for a in self.agents])
      ts = self._env.step(actions)
      rewards = {a: float(ts.reward[i]) for i, a in enumerate(self.agents)}
      last = bool(ts.last())
      terminated = {'__all__': last and float(ts.discount) == 0.}
      truncated = {'__all__': last and float(ts.discount) != 0.}
      return self._obs(ts), rewards, terminated, truncated, {}

  ray.init(num_cpus=os.cpu_count(), include_dashboard=False,
           logging_level='ERROR')
  config = (
      PPOConfig()
      .environment(OvercookedMultiAgent)
      .env_runners(num_env_runners=2, num_envs_per_env_runner=1)
      .multi_agent(policies={'shared'},
                   policy_mapping_fn=lambda agent_id, *a, **k: 'shared')
      .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[128, 128])))
  training = {}
  if _RLLIB_EPOCHS.value:
    training['num_epochs'] = _RLLIB_EPOCHS.value
  if _RLLIB_BATCH.value:
    training['train_batch_size_per_learner'] = _RLLIB_BATCH.value
  if training:
    config = config.training(**training)
  algo = config.build_algo()

  def sampled(result):
    return result['env_runners']['num_env_steps_sampled_lifetime']

  result = algo.train()  # Warm-up: the first iteration builds everything.
  t0, s0 = time.monotonic(), sampled(result)
  iterations = 0
  while time.monotonic() - t0 < secs:
    result = algo.train()
    iterations += 1
  t1, s1 = time.monotonic(), sampled(result)
  episode_return = result['env_runners'].get('episode_return_mean')
  algo.stop()
  ray.shutdown()
  return dict(steps_per_s=(s1 - s0) / (t1 - t0), iterations=iterations,
              episode_return_mean=episode_return,
              num_epochs=config.num_epochs,
              train_batch=config.train_batch_size_per_learner)


def ours_steps_per_second(secs: float) -> float:
  from benchmarks import pipeline_speed
  config = pipeline_speed.program_config(f'overcooked/{_LAYOUT.value}', 2)
  return pipeline_speed.train_steps_per_second(config, secs)[0]


def main(argv):
  del argv
  if _SIDE.value == 'rllib':
    print('RESULT ' + json.dumps(rllib_steps_per_second(_SECS.value)),
          flush=True)
    return
  print(f'rllib_speed: overcooked/{_LAYOUT.value}, {_SECS.value:.0f} s per '
        f'measurement, median of {_REPEATS.value}; {os.cpu_count()} CPUs',
        flush=True)
  ours, theirs = [], []
  for _ in range(_REPEATS.value):
    if _SIDE.value in ('both', 'ours'):
      ours.append(ours_steps_per_second(_SECS.value))
      print(f'  ours  (IMPALA, local program, 2 actors): {ours[-1]:8.0f} env '
            'steps/s', flush=True)
    if _SIDE.value == 'both':
      if not _RLLIB_PYTHON.value:
        raise app.UsageError('--rllib_python is needed to run the RLlib side.')
      cmd = [_RLLIB_PYTHON.value, os.path.abspath(__file__), '--side=rllib',
             f'--secs={_SECS.value}', f'--layout={_LAYOUT.value}']
      if _RLLIB_EPOCHS.value:
        cmd.append(f'--rllib_epochs={_RLLIB_EPOCHS.value}')
      if _RLLIB_BATCH.value:
        cmd.append(f'--rllib_batch={_RLLIB_BATCH.value}')
      env = dict(os.environ, PYTHONPATH=ROOT)
      out = subprocess.run(cmd, capture_output=True, text=True, env=env,
                           timeout=_SECS.value + 600)
      lines = [l for l in out.stdout.splitlines() if l.startswith('RESULT ')]
      if not lines:
        raise RuntimeError(f'RLlib side failed:\n{out.stdout}\n{out.stderr}')
      r = json.loads(lines[-1][len('RESULT '):])
      theirs.append(r['steps_per_s'])
      print(f'  rllib (PPO, 2 env runners, {r["num_epochs"]} epochs, batch '
            f'{r["train_batch"]}): {r["steps_per_s"]:8.0f} env steps/s '
            f'({r["iterations"]} iterations)', flush=True)
  if ours and theirs:
    o, t = statistics.median(ours), statistics.median(theirs)
    print(f'median: ours {o:.0f}, rllib {t:.0f} env steps/s; ratio {o / t:.1f}x',
          flush=True)


if __name__ == '__main__':
  app.run(main)
