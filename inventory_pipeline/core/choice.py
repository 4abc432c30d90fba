"""One choice per item under shared limits: the multiple-choice knapsack both the pricing and the
replenishment stages solve (core; cvxpy with HiGHS).

Every item has candidates (a price on the ladder, an order quantity in case packs); candidate c
has a value v_c and uses A[r, c] of resource r (a category's price-change budget, a store's
shelf space, the day's purchase budget). Choose exactly one candidate per item maximising the
total value with A x <= b:

    max  v' x   s.t.  sum_{c of item i} x_c = 1 (every item),  A x <= b,  x in {0, 1}

Most days no limit binds: each item takes its best candidate and no solver runs. Only the items
that touch a limit their best choices would break go to HiGHS, with the other items' usage fixed:
a MILP up to `milp_max` candidates, above it the LP relaxation. A multiple-choice knapsack's LP
optimum splits at most one item per binding row; each split item takes, among the candidates the
LP uses, the one with the least resource use priced at the LP's shadow prices (y' A_c): with one
binding row per item (a store's space, a category's cap on one side) that is its least-using
option, so the result stays feasible and short of the optimum by at most those few items.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp


class ChoiceInfeasible(ValueError):
    """No choice of one candidate per item keeps every limit (or the solver gave no answer)."""

    def __init__(self, message: str, rows: np.ndarray):
        super().__init__(message)
        self.rows = rows  # the limits (row indices of A) that could not be kept


def best_per_item(item: np.ndarray, value: np.ndarray, n: int) -> np.ndarray:
    """Index of each item's highest-value candidate (-1 for an item without candidates)."""
    order = np.lexsort((-value, item))
    first = np.r_[True, item[order][1:] != item[order][:-1]]
    best = np.full(n, -1)
    best[item[order][first]] = order[first]
    return best


def choose_one_per_item(
    item: np.ndarray,
    value: np.ndarray,
    A: sp.csr_matrix,
    b: np.ndarray,
    n: int,
    solver_seconds: float = 30.0,
    milp_max: int = 60_000,
    tol: float = 1e-9,
):
    """Index of the chosen candidate per item (-1: no candidates) and the rows that were binding
    for the best choices (the limits that needed the solver). Raises ChoiceInfeasible when no
    choice keeps the limits. See the module docstring."""
    import cvxpy as cp

    item, value, b = np.asarray(item), np.asarray(value, float), np.asarray(b, float)
    A = sp.csr_matrix(A)
    best = best_per_item(item, value, n)
    chosen = best.copy()
    x_best = np.zeros(len(item))
    x_best[best[best >= 0]] = 1.0
    over = np.flatnonzero(A @ x_best > b + tol)
    if len(over) == 0:
        return chosen, over
    # items with a candidate that uses a violated limit go to the solver; the others stay put
    touches = np.zeros(n, dtype=bool)
    touches[item[np.unique(A[over].nonzero()[1])]] = True
    sub = np.flatnonzero(touches[item])
    fixed = np.where(~touches[item], x_best, 0.0)
    room = b - A @ fixed
    As = A[:, sub]
    rows = np.flatnonzero(np.abs(As).sum(axis=1).A1 > 0)
    As, room = As[rows], room[rows]
    items_sub, inv = np.unique(item[sub], return_inverse=True)
    exact = len(sub) <= milp_max
    # the relaxation's 0 <= x <= 1 as variable bounds: as constraints they were one row per
    # candidate, and HiGHS's dual simplex took ~10 s instead of ~0.6 s on an M5 category
    x = cp.Variable(len(sub), boolean=True) if exact else cp.Variable(len(sub), bounds=[0, 1])
    one_hot = sp.csr_matrix((np.ones(len(sub)), (inv, np.arange(len(sub)))), shape=(len(items_sub), len(sub)))
    limits = As @ x <= room
    cons = [one_hot @ x == 1, limits]
    prob = cp.Problem(cp.Maximize(value[sub] @ x), cons)
    # with HiGHS's presolve, as before: without it each capped M5 category solved 3-5x faster, but
    # the suite's margin and the demo twin's KPIs moved, mostly down (docs/pricing.md)
    opts = dict(mip_rel_gap=1e-4) if exact else {}
    prob.solve(solver=cp.HIGHS, time_limit=solver_seconds, **opts)
    if x.value is None:
        raise ChoiceInfeasible(f"{'MILP' if exact else 'LP'} {prob.status} (HiGHS, {solver_seconds:g} s limit)", over)
    xv = np.asarray(x.value, float)
    if exact:
        pick = sub[xv.round() > 0.5]
    else:
        y = np.maximum(np.nan_to_num(np.asarray(limits.dual_value, float)), 0.0)
        d = pd.DataFrame({"pos": sub, "item": item[sub], "x": xv, "key": As.T @ y})
        d = d[d["x"] > 1e-6]
        pick = d.sort_values(["item", "key"]).drop_duplicates("item")["pos"].to_numpy()
    chosen[item[pick]] = pick
    return chosen, over
