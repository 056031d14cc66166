"""OPRE: options as responses (Vezhnevets et al., ICML 2020, arXiv:1906.01470).

K options share a torso and core. Acting mixes the option policies by the
meta-policy ``p(z | own history)``:
    mu(a | h) = sum_z p(z | h) pi_z(a | h).
The learner knows privileged information (the global state) and mixes by the
posterior ``q(z | global)`` instead:
    pi_q(a | h) = sum_z q(z) pi_z(a | h),   V_q(h) = sum_z q(z) V_z(h),
and trains ``pi_q``/``V_q`` with IMPALA's V-trace loss (importance ratios
``pi_q / mu``), plus ``kl_cost * KL(q || p)`` so that the meta-policy learns
to predict the option the posterior picks, and ``- option_entropy_cost *
H(E[q])``, the entropy of the posterior's *marginal* over the batch, to keep
every option in use without making any single step indecisive (a bonus on
each step's H(p) instead keeps the acting mixture an average of all options,
which we measured to stall learning on the toy game). With K = 1 the loss is
exactly IMPALA's.

Action masks: where the observation has an ``ACTION_MASK`` (1 = available),
every option's logits are masked (``common.mask_logits``), when acting and in
the learner alike, so each option, and hence any mixture of them, is a policy
over the available actions only.
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from marl_jax.algorithms import common
from marl_jax.algorithms import impala
from marl_jax.algorithms.base import ActorExtras, Algorithm, LearnerState
from marl_jax.networks.opre import make_opre_network
from marl_jax.types import EnvSpec, Trajectory


class OPRELossOutput(NamedTuple):
  vtrace: impala.VTraceLossOutput  # of the q-mixture (per-sequence sums)
  kl_q_p: jax.Array  # sum over valid transitions of KL(q || p)
  q_sum: jax.Array  # [K] sum over valid transitions of q(z)


def mixture_log_probs(option_logits: jax.Array, mixture_logits: jax.Array):
  """log sum_z w_z pi_z(a): ``[..., K, A]`` and ``[..., K]`` -> ``[..., A]``."""
  log_w = jax.nn.log_softmax(mixture_logits, axis=-1)
  log_pi = jax.nn.log_softmax(option_logits, axis=-1)
  return jax.nn.logsumexp(log_w[..., None] + log_pi, axis=-2)


def opre_sequence_loss(option_logits, option_values, prior_logits,
                       posterior_logits, behaviour_logits, actions, rewards,
                       discounts, step_types, mask, **vtrace_kwargs
                       ) -> OPRELossOutput:
  """OPRE's terms for one ``[T+1]`` sequence (see the module docstring)."""
  chex.assert_rank([option_logits, option_values, prior_logits,
                    posterior_logits], [3, 2, 2, 2])
  chex.assert_equal_shape([option_values, prior_logits, posterior_logits])
  q = jax.nn.softmax(posterior_logits, axis=-1)
  mix = mixture_log_probs(option_logits, posterior_logits)
  v_q = jnp.sum(q * option_values, axis=-1)
  vt = impala.vtrace_sequence_loss(mix, v_q, behaviour_logits, actions,
                                   rewards, discounts, step_types, mask,
                                   **vtrace_kwargs)
  log_q = jax.nn.log_softmax(posterior_logits[:-1], axis=-1)
  log_p = jax.nn.log_softmax(prior_logits[:-1], axis=-1)
  kl = jnp.sum(jnp.exp(log_q) * (log_q - log_p), axis=-1)
  q_sum = jnp.sum(vt.valid[:, None] * jnp.exp(log_q), axis=0)
  return OPRELossOutput(vt, jnp.sum(vt.valid * kl), q_sum)


def mask_option_logits(option_logits: jax.Array, observation) -> jax.Array:
  """``common.mask_logits`` of ``[..., K, A]`` option logits: the
  observation's ``[..., A]`` ``ACTION_MASK`` applies to every option."""
  if common.ACTION_MASK not in observation:
    return option_logits
  mask = observation[common.ACTION_MASK][..., None, :]
  return common.mask_logits(option_logits, {common.ACTION_MASK: mask})


# The names ``algorithms.make`` builds with this module (more than one:
# ``make`` takes the name as ``variant``), and per name the config key that
# names the privileged observation it reads (a GLOBAL the env may lack).
NAMES = ('opre',)
GLOBAL_STATE_KEYS = {'opre': 'opre_global_key'}


def make(env_spec: EnvSpec, config) -> Algorithm:
  """Builds OPRE for ``env_spec`` from an ml_collections ``config``."""
  if config.popart:
    raise ValueError('popart is not supported by OPRE; set popart=False.')
  if config.num_options < 1:
    raise ValueError(f'num_options must be >= 1, got {config.num_options}.')
  network = make_opre_network(env_spec, config.network, config.num_options,
                              config.opre_global_key)
  optimizer = common.make_optimizer(config)
  gkey = config.opre_global_key

  def init(key) -> LearnerState:
    return common.initial_learner_state(network.init(key), optimizer, config)

  def act(params, inputs, core_state, key, greedy: bool = False):
    out, core_state = network.step(params, inputs, core_state)
    option_logits = mask_option_logits(out.option_logits, inputs.observation)
    logits = mixture_log_probs(option_logits, out.prior_logits)
    return (common.sample_action(logits, key, greedy),
            ActorExtras(logits=logits), core_state)

  def loss_fn(params, batch: Trajectory, entropy_cost):
    out, _ = network.unroll(params, common.time_major_inputs(batch),
                            batch.core_state)
    out = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), out)  # [B, T+1, ...]
    out = out._replace(option_logits=mask_option_logits(out.option_logits,
                                                        batch.observation))
    posterior = network.posterior(params, batch.observation[gkey])
    res = jax.vmap(lambda *xs: opre_sequence_loss(
        *xs, discount=config.discount, lambda_=config.vtrace_lambda,
        clip_rho_threshold=config.clip_rho_threshold,
        clip_pg_rho_threshold=config.clip_pg_rho_threshold))(
            out.option_logits, out.option_values, out.prior_logits, posterior,
            batch.behaviour_logits, batch.action, batch.reward, batch.discount,
            batch.step_type, batch.mask)
    vt = res.vtrace
    n = jnp.maximum(jnp.sum(vt.num_valid), 1.)
    pg, baseline = jnp.sum(vt.pg_loss) / n, jnp.sum(vt.baseline_loss) / n
    entropy = jnp.sum(vt.entropy) / n
    kl = jnp.sum(res.kl_q_p) / n
    q_marginal = jnp.sum(res.q_sum, axis=0) / n
    h_marginal = -jnp.sum(q_marginal * jnp.log(q_marginal + 1e-8))
    loss = (pg + config.baseline_cost * baseline - entropy_cost * entropy +
            config.kl_cost * kl - config.option_entropy_cost * h_marginal)
    metrics = {
        'loss': loss, 'pg_loss': pg, 'baseline_loss': baseline,
        'entropy': entropy, 'kl_posterior_prior': kl,
        'option_marginal_entropy': h_marginal,
        'options_in_use': jnp.exp(h_marginal),
        'importance_ratio': jnp.sum(vt.rho) / n,
        'kl_behaviour_learner': jnp.sum(vt.kl) / n,
    }
    return loss, metrics

  def update(state: LearnerState, batch: Trajectory):
    chex.assert_rank(batch.action, 2)
    grads, metrics = jax.grad(loss_fn, has_aux=True)(
        state.params, batch, state.hyperparams['entropy_cost'])
    params, opt_state, opt_metrics = common.apply_gradients(optimizer, state,
                                                            grads)
    metrics.update(opt_metrics)
    return LearnerState(params=params, opt_state=opt_state,
                        step=state.step + 1, hyperparams=state.hyperparams,
                        extras=state.extras), metrics

  return Algorithm(name='opre', init=init, act=act,
                   initial_core_state=network.initial_state, update=update,
                   replay_table=common.sequence_table(config))
