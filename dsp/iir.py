"""A cascade of second-order sections run block by block in numpy, exactly as a recursive filter.

The hub must not import scipy at run time (scipy.signal alone is ~70 MB resident on a Pi with
256-512 MB). A biquad recursion sample by sample in Python is far too slow, and an FIR cut from the
impulse response would only approximate the filter. Instead the cascade is written as one
linear state-space system (A, B, C, D), state s, whose state is exactly scipy's `sosfilt` `zi`
(direct form II transposed per section). For a block x of N samples

    y[n]  = sum_{k<=n} h[n-k] x[k]  +  C A^n s          h[0] = D, h[m] = C A^(m-1) B
    s_N   = A^N s  +  sum_k A^(N-1-k) B x[k]

The first term is a linear convolution with the impulse response (no truncation: what a stretch
does not see is carried in s). It is done on sub-blocks of SUB samples: the convolution inside a
sub-block is one (SUB x SUB) triangular Toeplitz product, and the state at the start of every
sub-block follows from the one before by the same formula, all sub-blocks at once as one small
block-triangular product. So the output equals the recursion's to rounding (~1e-15 relative to
the signal), and any split of a signal into blocks gives the same numbers (to rounding).

Every product here is small (at most 90 x 90 for the state, 15 x 128 x 128 for the convolution):
OpenBLAS does not start threads for those, which on a busy two-core Pi can cost milliseconds.
"""
from __future__ import annotations

import numpy as np

__all__ = ["SOSFilter", "sos_state_space"]

SUB = 128             # samples per sub-block: the in-block convolution is a 128 x 128 product
PMAX = 15             # sub-blocks per pass; longer blocks are split (this changes rounding only)
CHUNK = SUB * PMAX


def sos_state_space(sos) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(A, B, C, D) of a cascade of sections [b0 b1 b2 a0 a1 a2]; the state is sosfilt's zi."""
    sos = np.asarray(sos, dtype=np.float64)
    if sos.ndim != 2 or sos.shape[1] != 6 or not sos.shape[0]:
        raise ValueError(f"second-order sections must have shape (n, 6), not {sos.shape}")
    if np.any(sos[:, 3] == 0) or not np.all(np.isfinite(sos)):
        raise ValueError("second-order sections need a0 != 0 and finite coefficients")
    A = np.zeros((0, 0))
    B = np.zeros(0)
    C = np.zeros(0)
    D = 1.0
    for b0, b1, b2, a0, a1, a2 in sos:
        b0, b1, b2, a1, a2 = b0 / a0, b1 / a0, b2 / a0, a1 / a0, a2 / a0
        Ai = np.array([[-a1, 1.0], [-a2, 0.0]])
        Bi = np.array([b1 - a1 * b0, b2 - a2 * b0])
        Ci = np.array([1.0, 0.0])
        n = A.shape[0]
        An = np.zeros((n + 2, n + 2))
        An[:n, :n] = A
        An[n:, :n] = np.outer(Bi, C)
        An[n:, n:] = Ai
        A, B = An, np.concatenate((B, Bi * D))
        C, D = np.concatenate((b0 * C, Ci)), b0 * D
    return A, B, C, float(D)


class SOSFilter:
    """`y = filter(x)`: the cascade `sos`, state carried from call to call (float64 out)."""

    def __init__(self, sos, zi=None):
        self.A, self.B, self.C, self.D = sos_state_space(sos)
        ns = self.A.shape[0]
        self.state = np.zeros(ns) if zi is None else np.array(zi, dtype=np.float64).reshape(ns)
        S = SUB
        apow = [np.eye(ns)]
        for _ in range(S):
            apow.append(apow[-1] @ self.A)
        self._apow = np.array(apow)                                    # A^r, r = 0..S
        obs = self.C @ self._apow[:S]                                  # C A^i      (S, ns)
        h = np.concatenate(([self.D], obs[:-1] @ self.B))              # impulse response
        idx = np.arange(S)
        lag = idx[None, :] - idx[:, None]
        self._toeplitz = np.where(lag >= 0, h[np.clip(lag, 0, None)], 0.0)  # X @ T: in-block part
        self._obs_t = np.ascontiguousarray(obs.T)                      # (ns, S)
        self._gs = np.ascontiguousarray(self._apow[S - 1::-1] @ self.B)  # A^(S-1-k) B (S, ns)
        m = self._apow[S]
        mp = [np.eye(ns)]
        for _ in range(PMAX):
            mp.append(mp[-1] @ m)
        self._mp = np.vstack(mp[:PMAX])                                # M^p, M = A^S (PMAX ns, ns)
        big = np.zeros((PMAX * ns, PMAX * ns))
        for p in range(PMAX):
            for q in range(p):
                big[p * ns:(p + 1) * ns, q * ns:(q + 1) * ns] = mp[p - 1 - q]
        self._big = big
        self._m = m

    def __call__(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if x.size <= CHUNK:
            return self._block(x)
        return np.concatenate([self._block(x[i:i + CHUNK]) for i in range(0, x.size, CHUNK)])

    def _block(self, x: np.ndarray) -> np.ndarray:
        n = x.size
        if n == 0:
            return np.zeros(0)
        S, ns, s0 = SUB, self.state.size, self.state
        pc, r = -(-n // S), n % S
        X = np.zeros((pc, S))
        X.reshape(-1)[:n] = x
        U = X @ self._gs                                               # (pc, ns)
        k = pc * ns
        states = (self._big[:k, :k] @ U.reshape(-1) + self._mp[:k] @ s0).reshape(pc, ns)
        Y = X @ self._toeplitz + states @ self._obs_t
        last = states[-1]
        if r == 0:
            self.state = self._m @ last + U[-1]
        else:
            self.state = self._apow[r] @ last + x[n - r:] @ self._gs[S - r:]
        return Y.reshape(-1)[:n]
