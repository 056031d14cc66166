"""The anakin runtime: rollout and update in one jitted program (JAX envs).

For functional environments (``envs.base.JaxEnvironment``), in the style of
PureJaxRL (Lu et al., 2022): ``make_train(config, env, algorithm)`` returns a
pure ``train(key)`` built from ``lax.scan``, so that it jits as one program
and vmaps over seeds (``jax.vmap(train)(keys)``). Inside, each iteration is
vmapped over the ``population_size`` members; each member plays self-play in
its own ``num_envs_per_actor`` env copies (every agent slot of its copies acts
with its params), each step is one vmapped ``act`` over all ``M * N`` agent
rows, and the member's ``update`` follows its rollout.

Two kinds of iteration, chosen by ``algorithm.replay_table``:
  * sequences (IMPALA, OPRE, MAPPO/IPPO): ``sequence_length`` (T) steps of
    every copy, written as ``Trajectory[M * N, T + 1]`` exactly as the
    distributed actors write them (one row per agent, ``reward[t]`` arriving
    with ``observation[t]``, ``FIRST`` after ``LAST`` inside a sequence, no
    padding). Env states, the recurrent state and the pending action carry
    over between iterations, so consecutive sequences overlap by one step
    and index 0 of a sequence holds the action (and behaviour logits) that
    was really taken there. Recurrent states reset on ``FIRST``.
  * joint episodes (QMIX, VDN; ``replay_table.joint``): every copy plays one
    whole episode from ``reset`` (``replay_table.sequence_length`` steps at
    most; steps after ``LAST`` are padding), the episodes go to the member's
    on-device replay (``replay.episode_buffer``, uniform or prioritized with
    the table's ``priority_exponent`` and ``beta`` annealed from its
    ``importance_exponent_start`` to 1
    over ``num_steps``), and ``updates_per_iteration`` updates sample
    ``batch_size`` episodes once the replay holds that many. Acting uses
    ``algorithm.acting_params(params, env_steps)`` (QMIX's epsilon) with the
    member's own env-step count. With ``joint_rollout='chunks'`` each copy
    instead plays ``T`` steps on from where it stopped, through its resets,
    and the replay holds these chunks (JaxMARL's layout, ``rollouts.chunks``):
    no padding, so short episodes cost no compute on steps after ``LAST``.

Test episodes (``test_episodes`` > 0 in the config): ``Anakin.test`` plays
that many episodes per member from ``reset`` with greedy actions (``act``
with ``greedy=True``: no exploration) and returns each member's mean
episode return and mean per-episode sum of every ``info`` key (e.g. SMAX's
``won``: the win rate); ``run`` calls it every ``test_interval_steps`` env
steps and at the end, and logs it as ``test.csv`` (PyMARL's test episodes),
with the number of episodes per member in its ``test_episodes`` column. The
test at the end plays ``final_test_episodes`` episodes instead when that is
set (a tighter final figure: 1,024 episodes give a win rate to about +-0.01).

Metrics come back as arrays with a leading ``[population_size]`` axis per
iteration: the learner's metrics, and the mean episode return (and each
``info`` key's per-episode sum, e.g. sparse reward or wins) over episodes
that ended during the iteration (``nan`` if none), with their count, and
``env_steps``, the env steps really taken: a step on a ``LAST`` timestep only
resets the env and is not counted, in every layout (as the distributed
actors count), so ``num_steps``, epsilon and reward-shaping anneals see the
same steps whatever the episode length. ``run`` is the imperative shell: it
runs jitted chunks of iterations and logs, prints progress and checkpoints
between them.

The package: ``rollouts.py`` (the runner state and what a member plays),
``train.py`` (``make_anakin``, ``make_train``: rollouts and updates as pure
functions), ``run.py`` (``make_env``, ``run``: checkpoints, logs, progress).
"""

from __future__ import annotations


from marl_jax.runtime.anakin.rollouts import MemberState, Rollouts  # pylint: disable=unused-import
from marl_jax.runtime.anakin.rollouts import make_rollouts  # pylint: disable=unused-import
from marl_jax.runtime.anakin.train import Anakin, make_anakin, make_train  # pylint: disable=unused-import
from marl_jax.runtime.anakin.run import make_env, run  # pylint: disable=unused-import
