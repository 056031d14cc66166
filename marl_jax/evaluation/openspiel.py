"""Exact evaluation of policies on the ``openspiel/`` games: no sampling.

Kuhn and Leduc poker are small enough to enumerate, so a policy's quality
is computed, not estimated:

  * ``tabular_policy(game, policy)``: any policy as an OpenSpiel
    ``TabularPolicy``. A policy is a ``probs(features [D] float32, legal [A]
    bool, player) -> [A]`` callable (with ``batched=True``: ``[S, D], [S, A],
    player -> [S, A]``), fed exactly what ``envs/openspiel.py`` gives the
    player to move (its information-state tensor and legal actions), or an
    OpenSpiel ``Policy``. Every information state of the game is visited
    once (a walk of the game tree); the probabilities are renormalised over
    the legal actions.
  * ``exploitability(game, policy)``: NashConv / 2, OpenSpiel's
    ``exploitability.exploitability`` (the mean over the two players of what
    a best response to the policy gains; 0 exactly at a Nash equilibrium).
  * ``mixture(game, policies, weights)``: the behaviour policy that plays
    like "draw policy k with probability ``weights[k]`` before the game, then
    follow it" (the realisation-equivalent mixture, Kuhn's theorem). At an
    information state ``s`` of player ``p`` the policies are weighted by
    ``weights[p, k]`` times ``p``'s own reach probability of ``s`` under
    policy ``k``: ``pi(a|s) = sum_k w_k x_k(s) pi_k(a|s) / sum_k w_k x_k(s)``.
    Averaging the action probabilities without the reach (``sum_k w_k
    pi_k(a|s)``) is a different, wrong, policy as soon as the policies
    disagree before ``s``. ``mixture_exploitability`` is its exploitability:
    a PSRO meta-strategy's exploitability.
  * ``expected_payoffs(game, policy_0, policy_1)``: ``[2]`` expected returns
    when ``policy_0`` plays seat 0 and ``policy_1`` seat 1, summed over the
    whole tree (chance included). ``seat_payoffs`` does it for every pair of
    two lists at once and ``payoff_matrix(game, policies)`` gives the
    ``[K, K]`` table of a population whose policies play both seats (entry
    ``(i, j)``: ``i``'s expected return against ``j``, averaged over the
    seats), for ``population/`` meta-solvers and payoff tables.

How: the tree is walked once per game (cached) into sequence form. Each
information state ``s`` of player ``p`` records ``p``'s previous own
decision (the "parent sequence"; one per state, as these games have perfect
recall), and each terminal history ``z`` its chance probability ``c(z)``,
its returns ``u(z)`` and each player's last own decision. A player's reach of
``z`` under a policy is the product of its own action probabilities along its
sequence, so ``E[u] = sum_z c(z) u(z) x_0(z) y_1(z)``: one matrix product for
all pairs of policies.
"""

from __future__ import annotations

import copy
import functools
from typing import Callable, List, NamedTuple, Sequence

import numpy as np

from marl_jax.envs import openspiel as openspiel_env

Probs = Callable[[np.ndarray, np.ndarray, int], np.ndarray]


def _policy_module():
  from open_spiel.python import policy  # pylint: disable=g-import-not-at-top
  return policy


class GameTree(NamedTuple):
  """A game in sequence form (see the module docstring); ``S`` information
  states (the rows of ``skeleton``), ``A`` actions, ``Z`` terminals."""
  game: object  # pyspiel.Game
  skeleton: object  # TabularPolicy (uniform) whose rows index everything
  keys: tuple  # [S] information-state strings, in row order
  player: np.ndarray  # [S] int: whose information state
  features: np.ndarray  # [S, D] float32 information-state tensors
  legal: np.ndarray  # [S, A] bool
  parent: np.ndarray  # [S] int: parent sequence s' * A + a', or S * A (root)
  order: np.ndarray  # [S] int: states, every parent before its children
  chance: np.ndarray  # [Z] float64 chance probability of each terminal
  returns: np.ndarray  # [Z, 2] float64
  last: np.ndarray  # [2, Z] int: each player's last sequence (S * A: none)


def _load(game):
  return openspiel_env.load_game(game)


@functools.lru_cache(maxsize=16)
def _tree_of(game_string: str) -> GameTree:
  spiel = openspiel_env.pyspiel()
  game = spiel.load_game(game_string)
  openspiel_env.check_game(game)
  decision_states = {}  # history string -> state (TabularPolicy's input)
  parent_of = {}  # information-state key -> (key, action) or None
  found = []  # keys in discovery order
  terminals = []  # (chance, returns, (last of 0, last of 1))

  def visit(state, chance, last):
    if state.is_terminal():
      terminals.append((chance, state.returns(), last))
      return
    if state.is_chance_node():
      for action, p in state.chance_outcomes():
        if p > 0.:
          visit(state.child(action), chance * p, last)
      return
    player = state.current_player()
    key = state.information_state_string(player)
    decision_states[state.history_str()] = state
    if key not in parent_of:
      parent_of[key] = last[player]
      found.append(key)
    elif parent_of[key] != last[player]:
      raise ValueError(f'{game} has imperfect recall (information state '
                       f'{key!r} follows different own decisions); exact '
                       'evaluation needs perfect recall.')
    for action in state.legal_actions():
      mine = list(last)
      mine[player] = (key, action)
      visit(state.child(action), chance, tuple(mine))

  visit(game.new_initial_state(), 1., (None, None))
  skeleton = _policy_module().TabularPolicy(game, states=decision_states)
  index = skeleton.state_lookup
  num_actions = game.num_distinct_actions()
  num_states = len(index)
  root = num_states * num_actions

  def flat(seq):
    return root if seq is None else index[seq[0]] * num_actions + seq[1]

  player = np.zeros(num_states, np.int32)
  for p, keys in enumerate(skeleton.states_per_player):
    player[[index[k] for k in keys]] = p
  parent = np.full(num_states, root, np.int64)
  for key, seq in parent_of.items():
    parent[index[key]] = flat(seq)
  return GameTree(
      game=game, skeleton=skeleton,
      keys=tuple(sorted(index, key=index.get)), player=player,
      features=np.asarray(skeleton.state_in, np.float32),
      legal=np.asarray(skeleton.legal_actions_mask, bool),
      parent=parent, order=np.asarray([index[k] for k in found], np.int64),
      chance=np.asarray([t[0] for t in terminals], np.float64),
      returns=np.asarray([t[1] for t in terminals], np.float64),
      last=np.asarray([[flat(t[2][p]) for t in terminals] for p in (0, 1)],
                      np.int64))


def game_tree(game) -> GameTree:
  """The sequence form of ``game`` (a name, ``"openspiel/<name>"`` or a
  ``pyspiel.Game``), built once per game."""
  return _tree_of(str(_load(game)))


# ----------------------------------------------------------------------------
# Policies as tables.
# ----------------------------------------------------------------------------


def _normalised(tree: GameTree, probs: np.ndarray, what: str) -> np.ndarray:
  """``[S, A]`` probabilities checked and renormalised over legal actions."""
  probs = np.asarray(probs, np.float64)
  if probs.shape != tree.legal.shape:
    raise ValueError(f'{what}: expected probabilities of shape '
                     f'{list(tree.legal.shape)}, got {list(probs.shape)}.')
  probs = np.where(tree.legal, probs, 0.)
  total = probs.sum(-1, keepdims=True)
  bad = ~np.isfinite(probs).all(-1) | (probs < 0).any(-1) | (total[:, 0] <= 0)
  if bad.any():
    s = int(np.flatnonzero(bad)[0])
    legal = np.flatnonzero(tree.legal[s]).tolist()
    raise ValueError(
        f'{what} gave {probs[s].tolist()} at information state '
        f'{tree.keys[s]!r} of player {tree.player[s]} (legal actions '
        f'{legal}): need finite, non-negative probabilities with a positive '
        'sum over the legal actions.')
  return probs / total


def _table(tree: GameTree, policy, batched: bool) -> np.ndarray:
  """``[S, A]`` action probabilities of ``policy`` at every state."""
  policy_lib = _policy_module()
  if isinstance(policy, policy_lib.TabularPolicy):
    rows = []
    for key in tree.keys:
      if key not in policy.state_lookup:
        raise ValueError(f'The TabularPolicy has no information state {key!r};'
                         f' is it a policy of {tree.game}?')
      rows.append(policy.action_probability_array[policy.state_lookup[key]])
    return _normalised(tree, np.stack(rows), 'The TabularPolicy')
  if isinstance(policy, policy_lib.Policy):
    out = np.zeros(tree.legal.shape, np.float64)
    for s, state in enumerate(tree.skeleton.states):
      for a, p in policy.action_probabilities(
          state, int(tree.player[s])).items():
        out[s, a] = p
    return _normalised(tree, out, type(policy).__name__)
  if not callable(policy):
    raise TypeError('A policy is a probs(features, legal, player) callable or '
                    f'an OpenSpiel Policy; got {type(policy).__name__}.')
  out = np.zeros(tree.legal.shape, np.float64)
  num_actions = out.shape[1]
  for p in (0, 1):
    rows = np.flatnonzero(tree.player == p)
    if batched:
      got = np.asarray(policy(tree.features[rows], tree.legal[rows], p),
                       np.float64)
      if got.shape != (len(rows), num_actions):
        raise ValueError(
            f'The batched policy returned shape {list(got.shape)} for player '
            f'{p}\'s {len(rows)} information states; expected '
            f'{[len(rows), num_actions]}.')
      out[rows] = got
      continue
    for s in rows:
      got = np.asarray(policy(tree.features[s], tree.legal[s], p), np.float64)
      if got.shape != (num_actions,):
        raise ValueError(f'The policy returned shape {list(got.shape)} at '
                         f'information state {tree.keys[s]!r}; expected '
                         f'[{num_actions}].')
      out[s] = got
  return _normalised(tree, out, 'The policy')


def _as_tabular(tree: GameTree, table: np.ndarray):
  out = copy.copy(tree.skeleton)
  out.action_probability_array = table
  return out


def tabular_policy(game, policy, batched: bool = False):
  """``policy`` as an OpenSpiel ``TabularPolicy`` of ``game``.

  Args:
    game: a name (``'kuhn_poker'``, ``'openspiel/kuhn_poker'``) or a
      ``pyspiel.Game``.
    policy: ``probs(features [D] float32, legal [A] bool, player) -> [A]``
      (the information-state tensor and legal actions the environment gives
      the player to move), or an OpenSpiel ``Policy``.
    batched: ``policy`` takes ``[S, D]`` and ``[S, A]`` (all of ``player``'s
      information states at once) and returns ``[S, A]``.

  Returns:
    A ``TabularPolicy`` (rows in OpenSpiel's order), renormalised over the
    legal actions.

  Raises:
    ValueError: wrong shape, negative or non-finite probabilities, or no
      probability on any legal action.
  """
  tree = game_tree(game)
  return _as_tabular(tree, _table(tree, policy, batched))


def nash_conv(game, policy, batched: bool = False) -> float:
  """OpenSpiel's NashConv: the sum over players of a best response's gain."""
  from open_spiel.python.algorithms import exploitability as lib  # pylint: disable=g-import-not-at-top
  tree = game_tree(game)
  return float(lib.nash_conv(tree.game, tabular_policy(tree.game, policy,
                                                       batched)))


def exploitability(game, policy, batched: bool = False) -> float:
  """NashConv / 2 of ``policy`` (see ``tabular_policy`` for its forms), by
  OpenSpiel's ``exploitability.exploitability``."""
  from open_spiel.python.algorithms import exploitability as lib  # pylint: disable=g-import-not-at-top
  tree = game_tree(game)
  return float(lib.exploitability(tree.game, tabular_policy(tree.game, policy,
                                                            batched)))


# ----------------------------------------------------------------------------
# Reach probabilities, mixtures and payoffs.
# ----------------------------------------------------------------------------


def _tables(tree: GameTree, policies: Sequence, batched: bool) -> np.ndarray:
  if isinstance(policies, (str, bytes)) or not len(policies):  # pylint: disable=g-explicit-length-test
    raise ValueError('policies must be a non-empty sequence of policies.')
  return np.stack([_table(tree, p, batched) for p in policies])


def _sequence_reach(tree: GameTree, tables: np.ndarray):
  """``(state_reach [K, S], sequence_reach [K, S * A + 1])``: each policy's
  own reach of every information state and sequence (root last, 1)."""
  k, s, a = tables.shape
  seq = np.ones((k, s * a + 1), np.float64)
  info = np.zeros((k, s), np.float64)
  for state in tree.order:
    reach = seq[:, tree.parent[state]]
    info[:, state] = reach
    seq[:, state * a:(state + 1) * a] = reach[:, None] * tables[:, state]
  return info, seq


def _weights(weights, k: int) -> np.ndarray:
  w = np.asarray(weights, np.float64)
  if w.shape == (k,):
    w = np.stack([w, w])
  if w.shape != (2, k) or not np.isfinite(w).all() or (w < 0).any():
    raise ValueError(f'weights must be [{k}] or [2, {k}] (per player) '
                     f'non-negative numbers; got {np.asarray(weights)!r}.')
  if (w.sum(-1) <= 0).any():
    raise ValueError(f'weights must have a positive sum; got {w.tolist()}.')
  return w / w.sum(-1, keepdims=True)


def mixture(game, policies: Sequence, weights, batched: bool = False):
  """The realisation-equivalent behaviour policy of a meta-mixture.

  Args:
    game: a name or a ``pyspiel.Game``.
    policies: ``K`` policies (callables or OpenSpiel ``Policy``s).
    weights: ``[K]`` mixture weights, or ``[2, K]`` one row per player (a
      PSRO meta-strategy per seat); normalised here.
    batched: as in ``tabular_policy``.

  Returns:
    A ``TabularPolicy``: at each information state the policies' action
    probabilities weighted by ``weights`` times the player's own reach of the
    state under each policy (module docstring). Where no policy of positive
    weight reaches a state, the weights alone (the state is never reached, so
    any choice is equivalent).
  """
  tree = game_tree(game)
  tables = _tables(tree, policies, batched)
  w = _weights(weights, tables.shape[0])
  reach, _ = _sequence_reach(tree, tables)
  w_state = w[tree.player].T  # [K, S]: each state's player's weights
  scale = w_state * reach
  total = scale.sum(0)
  scale = np.where(total > 0, scale / np.where(total > 0, total, 1.),
                   w_state)
  mixed = np.einsum('ks,ksa->sa', scale, tables)
  return _as_tabular(tree, _normalised(tree, mixed, 'The mixture'))


def mixture_exploitability(game, policies: Sequence, weights,
                           batched: bool = False) -> float:
  """``exploitability`` of ``mixture(game, policies, weights)``."""
  tree = game_tree(game)
  return exploitability(tree.game, mixture(tree.game, policies, weights,
                                           batched))


def _payoffs(tree: GameTree, tables_0: np.ndarray,
             tables_1: np.ndarray) -> np.ndarray:
  """``[2, K0, K1]``: sum over terminals of chance x own reaches x returns."""
  _, x = _sequence_reach(tree, tables_0)
  _, y = _sequence_reach(tree, tables_1)
  x_z = x[:, tree.last[0]]  # [K0, Z]
  y_z = y[:, tree.last[1]]  # [K1, Z]
  weighted = tree.chance[:, None] * tree.returns  # [Z, 2]
  return np.einsum('iz,zp,jz->pij', x_z, weighted, y_z)


def seat_payoffs(game, seat_0: Sequence, seat_1: Sequence,
                 batched: bool = False) -> np.ndarray:
  """``[2, K0, K1]`` exact expected returns of both players when
  ``seat_0[i]`` plays player 0 and ``seat_1[j]`` player 1."""
  tree = game_tree(game)
  return _payoffs(tree, _tables(tree, seat_0, batched),
                  _tables(tree, seat_1, batched))


def expected_payoffs(game, policy_0, policy_1,
                     batched: bool = False) -> np.ndarray:
  """``[2]`` exact expected returns, ``policy_0`` as player 0 and
  ``policy_1`` as player 1."""
  return seat_payoffs(game, [policy_0], [policy_1], batched)[:, 0, 0]


def payoff_matrix(game, policies: Sequence, batched: bool = False
                  ) -> np.ndarray:
  """``[K, K]``: entry ``(i, j)`` is policy ``i``'s exact expected return
  against policy ``j``, averaged over ``i`` playing seat 0 and seat 1
  (antisymmetric in a zero-sum game, 0 on the diagonal)."""
  tree = game_tree(game)
  tables = _tables(tree, policies, batched)
  v = _payoffs(tree, tables, tables)
  return 0.5 * (v[0] + v[1].T)


__all__: List[str] = [
    'GameTree', 'exploitability', 'expected_payoffs', 'game_tree', 'mixture',
    'mixture_exploitability', 'nash_conv', 'payoff_matrix', 'seat_payoffs',
    'tabular_policy']
